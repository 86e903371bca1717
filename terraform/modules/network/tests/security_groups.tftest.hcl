# The security-group rules generated from the flows table (security_groups.tf): every expected
# flow is there, on the right groups and port, and nothing else. Applied against the mocked AWS
# provider (nothing reaches AWS). Run by scripts/terraform-check.sh.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  azs                      = ["eu-west-1a", "eu-west-1b"]
  client_cidrs             = ["203.0.113.0/24", "198.51.100.0/24"]
  coordinator_egress_cidrs = ["192.0.2.10/32"]
  s3_bucket_names          = ["artifacts", "cohort-111122223333-eu-west-1-sealed-blobs"]
}

run "rules" {
  command = apply

  # [direction, the tier's group, the other end (group, S3 prefix list or CIDR), port]
  assert {
    condition = {
      for k, r in merge(
        { for k, r in aws_vpc_security_group_egress_rule.this : "egress ${k}" => r },
        { for k, r in aws_vpc_security_group_ingress_rule.this : "ingress ${k}" => r },
      ) : k => [r.security_group_id, coalesce(r.referenced_security_group_id, r.prefix_list_id, r.cidr_ipv4), r.from_port]
      } == {
      "egress lb_to_coordinator"         = [local.groups.load_balancer, local.groups.coordinator, 7000]
      "ingress lb_to_coordinator"        = [local.groups.coordinator, local.groups.load_balancer, 7000]
      "egress coordinator_to_node"       = [local.groups.coordinator, local.groups.node, 7070]
      "ingress coordinator_to_node"      = [local.groups.node, local.groups.coordinator, 7070]
      "egress coordinator_to_database"   = [local.groups.coordinator, local.groups.database, 5432]
      "ingress coordinator_to_database"  = [local.groups.database, local.groups.coordinator, 5432]
      "egress coordinator_to_endpoints"  = [local.groups.coordinator, local.groups.endpoints, 443]
      "ingress coordinator_to_endpoints" = [local.groups.endpoints, local.groups.coordinator, 443]
      "egress node_to_endpoints"         = [local.groups.node, local.groups.endpoints, 443]
      "ingress node_to_endpoints"        = [local.groups.endpoints, local.groups.node, 443]
      "egress coordinator_to_s3"         = [local.groups.coordinator, aws_vpc_endpoint.s3.prefix_list_id, 443]
      "egress node_to_s3"                = [local.groups.node, aws_vpc_endpoint.s3.prefix_list_id, 443]
      "egress 192.0.2.10/32"             = [local.groups.coordinator, "192.0.2.10/32", 443]
      "ingress 203.0.113.0/24"           = [local.groups.load_balancer, "203.0.113.0/24", 443]
      "ingress 198.51.100.0/24"          = [local.groups.load_balancer, "198.51.100.0/24", 443]
    }
    error_message = "Exactly the expected rules: no flow missing, none more."
  }

  assert {
    condition = alltrue([
      for r in concat(values(aws_vpc_security_group_egress_rule.this), values(aws_vpc_security_group_ingress_rule.this)) :
      r.ip_protocol == "tcp" && r.to_port == r.from_port && r.description != null &&
      length(compact([r.referenced_security_group_id, r.prefix_list_id, r.cidr_ipv4])) == 1
    ])
    error_message = "Every rule is one TCP port, described, with exactly one other end."
  }
}

run "no_outside_ends" {
  command = apply

  variables {
    client_cidrs             = []
    coordinator_egress_cidrs = []
  }

  assert {
    condition = alltrue([
      for r in concat(values(aws_vpc_security_group_egress_rule.this), values(aws_vpc_security_group_ingress_rule.this)) :
      r.cidr_ipv4 == null
    ])
    error_message = "Without client_cidrs and coordinator_egress_cidrs no rule names a CIDR."
  }
}

run "peer_regions" {
  command = apply

  # A multi-region cluster (examples/multi-region): this region's coordinators call the proxies
  # in two peered VPCs' application subnets, and one other region's coordinators call this
  # region's proxies. Port 7070 only, one CIDR rule per subnet, and nothing else changes.
  variables {
    peer_proxy_cidrs       = ["10.41.16.0/24", "10.42.16.0/24"]
    peer_coordinator_cidrs = ["10.41.16.0/24"]
  }

  assert {
    condition = {
      for k, r in merge(
        { for k, r in aws_vpc_security_group_egress_rule.this : "egress ${k}" => r if startswith(k, "peer_") },
        { for k, r in aws_vpc_security_group_ingress_rule.this : "ingress ${k}" => r if startswith(k, "peer_") },
      ) : k => [r.security_group_id, r.cidr_ipv4, r.from_port, r.to_port]
      } == {
      "egress peer_proxy 10.41.16.0/24"        = [local.groups.coordinator, "10.41.16.0/24", 7070, 7070]
      "egress peer_proxy 10.42.16.0/24"        = [local.groups.coordinator, "10.42.16.0/24", 7070, 7070]
      "ingress peer_coordinator 10.41.16.0/24" = [local.groups.node, "10.41.16.0/24", 7070, 7070]
    }
    error_message = "Peer regions add exactly coordinator egress to their proxies and node ingress from their coordinators, on the proxy port."
  }

  assert {
    condition     = length(aws_vpc_security_group_egress_rule.this) == 10 && length(aws_vpc_security_group_ingress_rule.this) == 8
    error_message = "The tier flows and the client and RPC CIDR rules stay as they were beside the peer rules."
  }
}

run "peer_cidr_must_not_be_the_internet" {
  command = plan

  variables {
    peer_coordinator_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.peer_coordinator_cidrs]
}

run "the_s3_endpoint_reaches_only_the_clusters_buckets" {
  command = apply

  assert {
    condition = jsondecode(aws_vpc_endpoint.s3.policy).Statement[0].Resource == [
      "arn:aws:s3:::artifacts", "arn:aws:s3:::artifacts/*",
      "arn:aws:s3:::cohort-111122223333-eu-west-1-sealed-blobs", "arn:aws:s3:::cohort-111122223333-eu-west-1-sealed-blobs/*",
    ]
    error_message = "The S3 gateway endpoint's policy names the cluster's buckets."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_vpc_endpoint.s3.policy).Statement : s.Effect == "Allow" && !contains(flatten([s.Resource]), "*") && !contains(flatten([s.Resource]), "arn:aws:s3:::*")
    ])
    error_message = "No statement reaches every bucket."
  }

  assert {
    condition     = jsondecode(aws_vpc_endpoint.s3.policy).Statement[1].Action == "s3:GetObject"
    error_message = "Amazon Linux's and SSM's buckets are read-only."
  }
}

run "bucket_arns_are_refused" {
  command = plan

  variables {
    s3_bucket_names = ["arn:aws:s3:::artifacts"]
  }

  expect_failures = [var.s3_bucket_names]
}
