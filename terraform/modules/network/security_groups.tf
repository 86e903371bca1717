# Security groups of every tier, in one place so that the rules between tiers read as one table:
#
#   clients (client_cidrs) --443--> load balancer --7000--> coordinators --7070--> parent proxies
#                                                           coordinators --5432--> database
#   parents, coordinators  --443--> interface endpoints, S3 (gateway endpoint prefix list)
#   coordinators           --443--> coordinator_egress_cidrs (chain RPC, through NAT), if any
#   coordinators          --7070--> peer_proxy_cidrs (other regions' parent proxies), if any
#   peer_coordinator_cidrs --7070--> parent proxies (other regions' coordinators), if any
#
# Nothing else is open: no SSH (SSM Session Manager instead), no 0.0.0.0/0 ingress unless
# client_cidrs says so. DNS to the VPC resolver and the Nitro time source are not filtered by
# security groups.

locals {
  s3_prefix_list = aws_vpc_endpoint.s3.prefix_list_id
}

# One group per tier: its name after the cluster's, and what it is for. These four are attached
# outside this module; the endpoints' group (below) in it.
locals {
  security_groups = {
    load_balancer = { name = "client-api-lb", description = "Client API load balancer: HTTPS from client_cidrs, to coordinators" }
    coordinator   = { name = "coordinator", description = "Coordinators: client API from the load balancer; to proxies, database, endpoints" }
    node          = { name = "node", description = "Parent instances: proxy API from coordinators; to endpoints and S3 only" }
    database      = { name = "database", description = "PostgreSQL: from coordinators only, no egress" }
  }
}

resource "aws_security_group" "this" {
  # checkov:skip=CKV2_AWS_5: attached outside this module: the load balancer's, the coordinators' and the database's in the coordinator module (load balancer, launch template, RDS instance), the nodes' on each node's fixed network interface; checkov does not follow module outputs into other modules.
  for_each = local.security_groups

  name        = "${var.name}-${each.value.name}"
  description = each.value.description
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-${each.value.name}" })
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-vpc-endpoints"
  description = "Interface VPC endpoints: HTTPS from parents and coordinators"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-vpc-endpoints" })
}

# --- Rules -----------------------------------------------------------------------------------

locals {
  # The groups above, by tier.
  groups = merge(
    { for tier, g in aws_security_group.this : tier => g.id },
    { endpoints = aws_security_group.endpoints.id },
  )

  # Every permitted flow, once. `from` and `to` are a tier (a group above), "s3" (the S3 gateway
  # endpoint's prefix list) or a CIDR. A flow between two tiers is an egress rule on `from` and
  # an ingress rule on `to`; a flow with one end outside the tiers is the rule on the tier's side
  # only. `egress` and `ingress` are the rules' descriptions.
  flows = {
    lb_to_coordinator = {
      from    = "load_balancer"
      to      = "coordinator"
      port    = var.coordinator_port
      egress  = "Forward to the coordinators' API"
      ingress = "Client API and health checks from the load balancer"
    }
    coordinator_to_node = {
      from    = "coordinator"
      to      = "node"
      port    = var.proxy_port
      egress  = "Parent proxies' HTTP API"
      ingress = "Proxy HTTP API from the coordinators"
    }
    coordinator_to_database = {
      from    = "coordinator"
      to      = "database"
      port    = 5432
      egress  = "PostgreSQL"
      ingress = "PostgreSQL from the coordinators"
    }
    coordinator_to_endpoints = {
      from    = "coordinator"
      to      = "endpoints"
      port    = 443
      egress  = "AWS APIs through the interface endpoints"
      ingress = "HTTPS from the coordinator tier"
    }
    node_to_endpoints = {
      from    = "node"
      to      = "endpoints"
      port    = 443
      egress  = "KMS, STS, CloudWatch, SSM through the interface endpoints"
      ingress = "HTTPS from the node tier"
    }
    coordinator_to_s3 = {
      from    = "coordinator"
      to      = "s3"
      port    = 443
      egress  = "S3 (artifacts, packages) through the gateway endpoint"
      ingress = null
    }
    node_to_s3 = {
      from    = "node"
      to      = "s3"
      port    = 443
      egress  = "S3 (EIF, proxy binary, sealed blobs, packages) through the gateway endpoint"
      ingress = null
    }
  }

  # Flows to or from CIDRs, keyed by the CIDR (one map per direction: a CIDR may be in both).
  client_flows = {
    for cidr in var.client_cidrs : cidr => {
      from    = cidr
      to      = "load_balancer"
      port    = 443
      egress  = null
      ingress = "Client API (HTTPS) from ${cidr}"
    }
  }
  rpc_flows = {
    for cidr in var.coordinator_egress_cidrs : cidr => {
      from    = "coordinator"
      to      = cidr
      port    = 443
      ingress = null
      egress  = "Chain JSON-RPC (HTTPS) at ${cidr} through NAT"
    }
  }
  # Across regions (VPC peering; a security group cannot name a group in a peer VPC of another
  # region, so the other end is the peer's application subnets). Keyed "peer_proxy CIDR" and
  # "peer_coordinator CIDR", so that they never collide with the CIDR-keyed flows above.
  peer_proxy_flows = {
    for cidr in var.peer_proxy_cidrs : "peer_proxy ${cidr}" => {
      from    = "coordinator"
      to      = cidr
      port    = var.proxy_port
      ingress = null
      egress  = "Parent proxies' HTTP API in another region (${cidr}, VPC peering)"
    }
  }
  peer_coordinator_flows = {
    for cidr in var.peer_coordinator_cidrs : "peer_coordinator ${cidr}" => {
      from    = cidr
      to      = "node"
      port    = var.proxy_port
      egress  = null
      ingress = "Proxy HTTP API from the coordinators in another region (${cidr}, VPC peering)"
    }
  }

  # The rules, as the two resources below take them: the tier's group, and the other end as a
  # group, the prefix list or a CIDR (exactly one of them).
  rules = {
    for direction, flows in {
      egress  = merge({ for k, f in local.flows : k => f if contains(keys(local.groups), f.from) }, local.rpc_flows, local.peer_proxy_flows)
      ingress = merge({ for k, f in local.flows : k => f if contains(keys(local.groups), f.to) }, local.client_flows, local.peer_coordinator_flows)
      } : direction => {
      for k, f in flows : k => {
        group       = local.groups[direction == "egress" ? f.from : f.to]
        peer        = direction == "egress" ? f.to : f.from
        description = f[direction]
        port        = f.port
      }
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each = local.rules.egress

  security_group_id            = each.value.group
  description                  = each.value.description
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = lookup(local.groups, each.value.peer, null)
  prefix_list_id               = each.value.peer == "s3" ? local.s3_prefix_list : null
  cidr_ipv4                    = can(cidrhost(each.value.peer, 0)) ? each.value.peer : null
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.rules.ingress

  security_group_id            = each.value.group
  description                  = each.value.description
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = lookup(local.groups, each.value.peer, null)
  prefix_list_id               = each.value.peer == "s3" ? local.s3_prefix_list : null
  cidr_ipv4                    = can(cidrhost(each.value.peer, 0)) ? each.value.peer : null
}
