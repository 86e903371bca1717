output "coordinator_url" {
  description = "The client API (point a DNS name of the certificate at load_balancer_dns_name)."
  value       = module.coordinator.client_api_url
}

output "load_balancer_dns_name" {
  description = "DNS name of the client API load balancer."
  value       = module.coordinator.load_balancer_dns_name
}

output "nodes" {
  description = "Per node: its availability zone, the proxy's stable IP and URL, its KMS key and its Auto Scaling group."
  value = {
    for i, n in module.node : i => {
      az                     = local.nodes[i]
      proxy_ip               = n.proxy_ip
      proxy_url              = n.proxy_url
      kms_key_arn            = n.kms_key_arn
      parent_role_arn        = n.parent_role_arn
      autoscaling_group_name = n.autoscaling_group_name
    }
  }
}

output "kms_key_policies" {
  description = "Each node's KMS key policy as JSON; compare with `cohort kms policy --node I --measurements FILE --parent-role ARN --admin ARN`."
  value       = { for i, n in module.node : i => n.kms_key_policy }
}

output "measurements" {
  description = "The enclave images in effect: per measurements file, its PCRs."
  value       = zipmap(var.measurements_files, module.measurements.images)
}

output "blob_bucket" {
  description = "Sealed-blob bucket (node I under node-I/)."
  value       = module.storage.blob_bucket_name
}

output "db_endpoint" {
  description = "The coordinators' PostgreSQL."
  value       = module.coordinator.db_endpoint
}

output "db_secret_arn" {
  description = "Secrets Manager secret of the database credentials."
  value       = module.coordinator.db_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.monitoring.alarm_topic_arn
}
