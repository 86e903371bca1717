# Where resources stood before the Terraform tree shared its modules (kms_key, service_role,
# instance_group, metric_alarms) and generated repeated resources from tables: with these, a
# deployment made before that plans no replacement, only the moves. They can go once every
# deployment has applied them.

# The resources of iam.tf:
moved {
  from = aws_iam_role.parent
  to   = module.role.aws_iam_role.this
}

moved {
  from = aws_iam_instance_profile.parent
  to   = module.role.aws_iam_instance_profile.this[0]
}

moved {
  from = aws_iam_role_policy.parent
  to   = module.role.aws_iam_role_policy.this[0]
}

moved {
  from = aws_iam_role_policy_attachment.ssm
  to   = module.role.aws_iam_role_policy_attachment.this["ssm"]
}

# The resources of kms.tf:
moved {
  from = aws_kms_key.node
  to   = module.key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.node
  to   = module.key.aws_kms_alias.this
}

# The resources of main.tf:
moved {
  from = aws_launch_template.node
  to   = module.group.aws_launch_template.this
}

moved {
  from = aws_autoscaling_group.node
  to   = module.group.aws_autoscaling_group.this
}
