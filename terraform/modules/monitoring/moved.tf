# Where resources stood before the Terraform tree shared its modules (kms_key, service_role,
# instance_group, metric_alarms) and generated repeated resources from tables: with these, a
# deployment made before that plans no replacement, only the moves. They can go once every
# deployment has applied them.

# The resources of main.tf:
moved {
  from = aws_kms_key.alarms
  to   = module.alarms_key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.alarms
  to   = module.alarms_key.aws_kms_alias.this
}

moved {
  from = aws_cloudwatch_metric_alarm.node_status_check
  to   = module.alarms["node_status_check"].aws_cloudwatch_metric_alarm.this
}

moved {
  from = aws_cloudwatch_metric_alarm.node_in_service
  to   = module.alarms["node_in_service"].aws_cloudwatch_metric_alarm.this
}

moved {
  from = aws_cloudwatch_metric_alarm.coordinators_in_service
  to   = module.alarms["cluster"].aws_cloudwatch_metric_alarm.this["coordinators_in_service"]
}

moved {
  from = aws_cloudwatch_metric_alarm.coordinator_unhealthy_hosts
  to   = module.alarms["cluster"].aws_cloudwatch_metric_alarm.this["coordinator_unhealthy_hosts"]
}

moved {
  from = aws_cloudwatch_metric_alarm.db_cpu
  to   = module.alarms["cluster"].aws_cloudwatch_metric_alarm.this["db_cpu"]
}

moved {
  from = aws_cloudwatch_metric_alarm.db_free_storage
  to   = module.alarms["cluster"].aws_cloudwatch_metric_alarm.this["db_free_storage"]
}

# The healthy-nodes alarm is counted since regions without coordinators (node alarms only) exist:
moved {
  from = aws_cloudwatch_metric_alarm.healthy_nodes
  to   = aws_cloudwatch_metric_alarm.healthy_nodes[0]
}
