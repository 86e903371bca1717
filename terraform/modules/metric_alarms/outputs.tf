output "alarm_names" {
  description = "The alarms' names, by key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "dimensions" {
  description = "The alarms' metric dimensions, by key (what the alarm actually watches)."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.dimensions }
}

output "metrics" {
  description = "The alarms' metrics, by key: namespace and name."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => { namespace = a.namespace, name = a.metric_name } }
}
