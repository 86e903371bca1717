output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Every alarm this module made."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.node_status_check : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.node_in_service : a.alarm_name],
    [
      aws_cloudwatch_metric_alarm.healthy_nodes.alarm_name,
      aws_cloudwatch_metric_alarm.coordinators_in_service.alarm_name,
      aws_cloudwatch_metric_alarm.coordinator_unhealthy_hosts.alarm_name,
      aws_cloudwatch_metric_alarm.db_cpu.alarm_name,
      aws_cloudwatch_metric_alarm.db_free_storage.alarm_name,
    ],
  )
}
