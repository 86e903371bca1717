# Where resources stood before the Terraform tree shared its modules (kms_key, service_role,
# instance_group, metric_alarms) and generated repeated resources from tables: with these, a
# deployment made before that plans no replacement, only the moves. They can go once every
# deployment has applied them.

# The resources of main.tf:
moved {
  from = aws_kms_key.logs
  to   = module.logs_key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.logs
  to   = module.logs_key.aws_kms_alias.this
}

moved {
  from = aws_iam_role.flow_logs
  to   = module.flow_logs_role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.flow_logs
  to   = module.flow_logs_role.aws_iam_role_policy.this[0]
}

# The resources of security_groups.tf:
moved {
  from = aws_security_group.load_balancer
  to   = aws_security_group.this["load_balancer"]
}

moved {
  from = aws_security_group.coordinator
  to   = aws_security_group.this["coordinator"]
}

moved {
  from = aws_security_group.node
  to   = aws_security_group.this["node"]
}

moved {
  from = aws_security_group.database
  to   = aws_security_group.this["database"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.lb_from_clients
  to   = aws_vpc_security_group_ingress_rule.this
}

moved {
  from = aws_vpc_security_group_egress_rule.coordinator_to_rpc
  to   = aws_vpc_security_group_egress_rule.this
}

moved {
  from = aws_vpc_security_group_egress_rule.lb_to_coordinator
  to   = aws_vpc_security_group_egress_rule.this["lb_to_coordinator"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.coordinator_from_lb
  to   = aws_vpc_security_group_ingress_rule.this["lb_to_coordinator"]
}

moved {
  from = aws_vpc_security_group_egress_rule.coordinator_to_node
  to   = aws_vpc_security_group_egress_rule.this["coordinator_to_node"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.node_from_coordinator
  to   = aws_vpc_security_group_ingress_rule.this["coordinator_to_node"]
}

moved {
  from = aws_vpc_security_group_egress_rule.coordinator_to_database
  to   = aws_vpc_security_group_egress_rule.this["coordinator_to_database"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.database_from_coordinator
  to   = aws_vpc_security_group_ingress_rule.this["coordinator_to_database"]
}

moved {
  from = aws_vpc_security_group_egress_rule.coordinator_to_endpoints
  to   = aws_vpc_security_group_egress_rule.this["coordinator_to_endpoints"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.endpoints_from_tiers["coordinator"]
  to   = aws_vpc_security_group_ingress_rule.this["coordinator_to_endpoints"]
}

moved {
  from = aws_vpc_security_group_egress_rule.node_to_endpoints
  to   = aws_vpc_security_group_egress_rule.this["node_to_endpoints"]
}

moved {
  from = aws_vpc_security_group_ingress_rule.endpoints_from_tiers["node"]
  to   = aws_vpc_security_group_ingress_rule.this["node_to_endpoints"]
}

moved {
  from = aws_vpc_security_group_egress_rule.coordinator_to_s3
  to   = aws_vpc_security_group_egress_rule.this["coordinator_to_s3"]
}

moved {
  from = aws_vpc_security_group_egress_rule.node_to_s3
  to   = aws_vpc_security_group_egress_rule.this["node_to_s3"]
}
