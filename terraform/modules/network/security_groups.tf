# Security groups of every tier, in one place so that the rules between tiers read as one table:
#
#   clients (client_cidrs) --443--> load balancer --7000--> coordinators --7070--> parent proxies
#                                                           coordinators --5432--> database
#   parents, coordinators  --443--> interface endpoints, S3 (gateway endpoint prefix list)
#   coordinators           --443--> coordinator_egress_cidrs (chain RPC, through NAT), if any
#
# Nothing else is open: no SSH (SSM Session Manager instead), no 0.0.0.0/0 ingress unless
# client_cidrs says so. DNS to the VPC resolver and the Nitro time source are not filtered by
# security groups.

locals {
  s3_prefix_list = aws_vpc_endpoint.s3.prefix_list_id
}

resource "aws_security_group" "load_balancer" {
  # checkov:skip=CKV2_AWS_5: attached outside this module (coordinator module: the client API load balancer); checkov does not follow module outputs into other modules.
  name        = "${var.name}-client-api-lb"
  description = "Client API load balancer: HTTPS from client_cidrs, to coordinators"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-client-api-lb" })
}

resource "aws_security_group" "coordinator" {
  # checkov:skip=CKV2_AWS_5: attached outside this module (coordinator module: the coordinators' launch template); checkov does not follow module outputs into other modules.
  name        = "${var.name}-coordinator"
  description = "Coordinators: client API from the load balancer; to proxies, database, endpoints"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-coordinator" })
}

resource "aws_security_group" "node" {
  # checkov:skip=CKV2_AWS_5: attached outside this module (node module: each node's fixed network interface); checkov does not follow module outputs into other modules.
  name        = "${var.name}-node"
  description = "Parent instances: proxy API from coordinators; to endpoints and S3 only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-node" })
}

resource "aws_security_group" "database" {
  # checkov:skip=CKV2_AWS_5: attached outside this module (coordinator module: the RDS instance); checkov does not follow module outputs into other modules.
  name        = "${var.name}-database"
  description = "PostgreSQL: from coordinators only, no egress"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-database" })
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from parents and coordinators"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-vpc-endpoints" })
}

# --- Load balancer ----------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "lb_from_clients" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.load_balancer.id
  description       = "Client API (HTTPS) from ${each.key}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_egress_rule" "lb_to_coordinator" {
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "Forward to the coordinators' API"
  ip_protocol                  = "tcp"
  from_port                    = var.coordinator_port
  to_port                      = var.coordinator_port
  referenced_security_group_id = aws_security_group.coordinator.id
}

# --- Coordinators -----------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "coordinator_from_lb" {
  security_group_id            = aws_security_group.coordinator.id
  description                  = "Client API and health checks from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.coordinator_port
  to_port                      = var.coordinator_port
  referenced_security_group_id = aws_security_group.load_balancer.id
}

resource "aws_vpc_security_group_egress_rule" "coordinator_to_node" {
  security_group_id            = aws_security_group.coordinator.id
  description                  = "Parent proxies' HTTP API"
  ip_protocol                  = "tcp"
  from_port                    = var.proxy_port
  to_port                      = var.proxy_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "coordinator_to_database" {
  security_group_id            = aws_security_group.coordinator.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "coordinator_to_endpoints" {
  security_group_id            = aws_security_group.coordinator.id
  description                  = "AWS APIs through the interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "coordinator_to_s3" {
  security_group_id = aws_security_group.coordinator.id
  description       = "S3 (artifacts, packages) through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = local.s3_prefix_list
}

resource "aws_vpc_security_group_egress_rule" "coordinator_to_rpc" {
  for_each = toset(var.coordinator_egress_cidrs)

  security_group_id = aws_security_group.coordinator.id
  description       = "Chain JSON-RPC (HTTPS) at ${each.key} through NAT"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.key
}

# --- Parent instances -------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "node_from_coordinator" {
  security_group_id            = aws_security_group.node.id
  description                  = "Proxy HTTP API from the coordinators"
  ip_protocol                  = "tcp"
  from_port                    = var.proxy_port
  to_port                      = var.proxy_port
  referenced_security_group_id = aws_security_group.coordinator.id
}

resource "aws_vpc_security_group_egress_rule" "node_to_endpoints" {
  security_group_id            = aws_security_group.node.id
  description                  = "KMS, STS, CloudWatch, SSM through the interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "node_to_s3" {
  security_group_id = aws_security_group.node.id
  description       = "S3 (EIF, proxy binary, sealed blobs, packages) through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = local.s3_prefix_list
}

# --- Database ---------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "database_from_coordinator" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the coordinators"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.coordinator.id
}

# --- Interface endpoints ----------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_tiers" {
  for_each = {
    node        = aws_security_group.node.id
    coordinator = aws_security_group.coordinator.id
  }

  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the ${each.key} tier"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = each.value
}
