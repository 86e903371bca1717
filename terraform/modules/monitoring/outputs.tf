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
