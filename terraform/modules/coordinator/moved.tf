# Where resources stood before the Terraform tree shared its modules (kms_key, service_role,
# instance_group, metric_alarms) and generated repeated resources from tables: with these, a
# deployment made before that plans no replacement, only the moves. They can go once every
# deployment has applied them.

# The resources of database.tf:
moved {
  from = aws_kms_key.database
  to   = module.database_key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.database
  to   = module.database_key.aws_kms_alias.this
}

moved {
  from = aws_iam_role.rds_monitoring
  to   = module.rds_monitoring_role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy_attachment.rds_monitoring
  to   = module.rds_monitoring_role.aws_iam_role_policy_attachment.this["enhanced_monitoring"]
}

# The resources of iam.tf:
moved {
  from = aws_iam_role.coordinator
  to   = module.role.aws_iam_role.this
}

moved {
  from = aws_iam_instance_profile.coordinator
  to   = module.role.aws_iam_instance_profile.this[0]
}

moved {
  from = aws_iam_role_policy.coordinator
  to   = module.role.aws_iam_role_policy.this[0]
}

moved {
  from = aws_iam_role_policy_attachment.ssm
  to   = module.role.aws_iam_role_policy_attachment.this["ssm"]
}

# The resources of main.tf:
moved {
  from = aws_launch_template.coordinator
  to   = module.group.aws_launch_template.this
}

moved {
  from = aws_autoscaling_group.coordinator
  to   = module.group.aws_autoscaling_group.this
}

# The log groups of main.tf and lb.tf:
moved {
  from = aws_cloudwatch_log_group.service
  to   = aws_cloudwatch_log_group.this["service"]
}

moved {
  from = aws_cloudwatch_log_group.prometheus
  to   = aws_cloudwatch_log_group.this["prometheus"]
}

moved {
  from = aws_cloudwatch_log_group.waf
  to   = aws_cloudwatch_log_group.this["waf"]
}
