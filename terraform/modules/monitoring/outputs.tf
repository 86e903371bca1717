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

output "alarm_dimensions" {
  description = "Each single-metric alarm's dimensions, by group (node_status_check, node_in_service, coordinator_view, cluster) and key: which node, group or instance it watches."
  value       = { for group, alarms in module.alarms : group => alarms.dimensions }
}

output "alarm_metrics" {
  description = "Each single-metric alarm's metric (namespace and name), by group (as alarm_dimensions) and key."
  value       = { for group, alarms in module.alarms : group => alarms.metrics }
}

output "healthy_nodes_alarm_nodes" {
  description = "The node labels the healthy-nodes alarm sums (cohort_node_healthy{node}), or [] where it is not made."
  value = flatten([
    for alarm in aws_cloudwatch_metric_alarm.healthy_nodes : [
      for q in alarm.metric_query : [for m in q.metric : m.dimensions.node]
    ]
  ])
}

output "kms_key_changes_rule" {
  description = "The EventBridge rule that pages on the watched KMS keys' administration (and the alarm topic key's): its name, event pattern (decoded) and target."
  value = {
    name    = aws_cloudwatch_event_rule.kms_key_changes.name
    pattern = jsondecode(aws_cloudwatch_event_rule.kms_key_changes.event_pattern)
    target  = aws_cloudwatch_event_target.kms_key_changes.arn
  }
}

output "shell_sessions_rule" {
  description = "The EventBridge rule that pages on root access to an instance through Systems Manager (every Session Manager session but a proxy tunnel, Run Command, associations, automations): its name, event pattern (decoded) and target."
  value = {
    name    = aws_cloudwatch_event_rule.shell_sessions.name
    pattern = jsondecode(aws_cloudwatch_event_rule.shell_sessions.event_pattern)
    target  = aws_cloudwatch_event_target.shell_sessions.arn
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

output "presignature_pool_alarm_query" {
  description = "The Metrics Insights query of the empty-presignature-pool alarm, or null where it is not made (no coordinators in the region)."
  value       = one([for a in aws_cloudwatch_metric_alarm.presignature_pools : one([for q in a.metric_query : q.expression])])
}
