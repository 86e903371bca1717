output "proxy_urls" {
  description = "The nodes' proxy URLs in the coordinators' --proxy order: the coordinators' node i (API, metrics, audit log, quorums) is the i-th."
  value       = var.proxy_urls
}

output "client_api_url" {
  description = "The client API (TLS at the load balancer); point a DNS name of the certificate at load_balancer_dns_name."
  value       = "https://${aws_lb.client_api.dns_name}"
}

output "load_balancer_dns_name" {
  description = "DNS name of the client API load balancer."
  value       = aws_lb.client_api.dns_name
}

output "load_balancer_arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch dimension)."
  value       = aws_lb.client_api.arn_suffix
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the coordinators' target group (CloudWatch dimension)."
  value       = aws_lb_target_group.coordinator.arn_suffix
}

output "autoscaling_group_name" {
  description = "The coordinators' Auto Scaling group."
  value       = module.group.autoscaling_group_name
}

output "coordinator_count" {
  description = "Coordinators the group keeps in service."
  value       = var.coordinator_count
}

output "db_instance_identifier" {
  description = "The RDS instance."
  value       = aws_db_instance.this.identifier
}

output "db_endpoint" {
  description = "PostgreSQL host:port."
  value       = aws_db_instance.this.endpoint
}

output "db_secret_arn" {
  description = "Secrets Manager secret with the database master credentials (managed and rotated by RDS)."
  value       = local.db_secret
}

output "db_allocated_storage_gb" {
  description = "The database's initial storage, GB."
  value       = var.db_allocated_storage_gb
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the coordinator metrics (cohort_node_healthy etc.)."
  value       = var.metrics_namespace
}

output "role_arn" {
  description = "IAM role of the coordinators."
  value       = module.role.arn
}

output "db_instance_arn" {
  description = "The RDS instance's ARN (a read replica's db_replica_of.source_db_arn)."
  value       = aws_db_instance.this.arn
}

output "db_mode" {
  description = "The database's part across regions: standalone, replicated (primary of read replicas), replica, or promoted (a replica after a failover)."
  value       = local.db_mode
}

output "db_replicate_source_db" {
  description = "The primary a read replica follows (null otherwise)."
  value       = local.replica ? aws_db_instance.this.replicate_source_db : null
}

output "db_secret_replica_regions" {
  description = "The regions the replicated primary's credentials secret is replicated to (empty otherwise)."
  value       = local.own_copy ? sort(aws_secretsmanager_secret.db[0].replica[*].region) : []
}

output "database_kms_key_arn" {
  description = "The database key: storage, Performance Insights, and the credentials secret (RDS's, or a replicated primary's own)."
  value       = module.database_key.arn
}

output "ami_id" {
  description = "The AMI this coordinator's instances start from: pin it with ami_id."
  value       = module.group.ami_id
}
