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
  description = "The EventBridge rule that pages on the watched KMS keys' administration: its name, event pattern (decoded) and target (null without watched keys)."
  value = length(aws_cloudwatch_event_rule.kms_key_changes) == 0 ? null : {
    name    = aws_cloudwatch_event_rule.kms_key_changes[0].name
    pattern = jsondecode(aws_cloudwatch_event_rule.kms_key_changes[0].event_pattern)
    target  = aws_cloudwatch_event_target.kms_key_changes[0].arn
  }
}
