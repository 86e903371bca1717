output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Every alarm this module made."
  value = concat(
    flatten([for group in module.alarms : values(group.alarm_names)]),
    aws_cloudwatch_metric_alarm.healthy_nodes[*].alarm_name,
  )
}

output "kms_key_changes_rule" {
  description = "The EventBridge rule that pages on the watched KMS keys' administration (and the alarm topic key's): its name, event pattern (decoded) and target."
  value = {
    name    = aws_cloudwatch_event_rule.kms_key_changes.name
    pattern = jsondecode(aws_cloudwatch_event_rule.kms_key_changes.event_pattern)
    target  = aws_cloudwatch_event_target.kms_key_changes.arn
  }
}

output "monitoring_changes_rule" {
  description = "The EventBridge rule that pages on what would silence the pages (the trail, the rules, the topic): its name, event pattern (decoded) and target."
  value = {
    name    = aws_cloudwatch_event_rule.monitoring_changes.name
    pattern = jsondecode(aws_cloudwatch_event_rule.monitoring_changes.event_pattern)
    target  = aws_cloudwatch_event_target.monitoring_changes.arn
  }
}
