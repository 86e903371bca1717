output "destination_bucket_arn" {
  description = "Where the replicas go."
  value       = var.destination_bucket_arn
}

output "destination_kms_key_arn" {
  description = "The KMS key the replicas are encrypted under (in the destination's region)."
  value       = var.destination_kms_key_arn
}

output "destination_region" {
  description = "The destination's region."
  value       = local.destination_region
}

output "prefixes" {
  description = "The replicated prefixes, one rule each."
  value       = [for r in aws_s3_bucket_replication_configuration.this.rule : r.filter[0].prefix]
}

output "role_arn" {
  description = "The role S3 replicates with."
  value       = module.role.arn
}
