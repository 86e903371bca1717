output "vpc_id" {
  description = "This region's VPC."
  value       = module.network.vpc_id
}

output "vpc_cidr" {
  description = "This region's VPC range."
  value       = module.network.vpc_cidr
}

output "app_subnet_ids" {
  description = "Application subnets, in AZ order."
  value       = module.network.app_subnet_ids
}

output "app_subnet_cidrs" {
  description = "Ranges of the application subnets, in AZ order (the other regions' security group rules)."
  value       = module.network.app_subnet_cidrs
}

output "app_route_table_ids" {
  description = "Application route tables by AZ (the previous region's peering routes here)."
  value       = module.network.app_route_table_ids
}

output "public_subnet_ids" {
  description = "Public subnets, in AZ order."
  value       = module.network.public_subnet_ids
}

output "data_subnet_ids" {
  description = "Database subnets, in AZ order."
  value       = module.network.data_subnet_ids
}

output "security_group_ids" {
  description = "Security group of each tier."
  value       = module.network.security_group_ids
}

output "logs_kms_key_arn" {
  description = "This region's CloudWatch Logs key."
  value       = module.network.logs_kms_key_arn
}

output "session_log_group_arn" {
  description = "Session Manager's log group in this region (modules/network)."
  value       = module.network.session_log_group_arn
}

output "session_kms_key_arn" {
  description = "The key Session Manager encrypts session data under in this region (modules/network)."
  value       = module.network.session_kms_key_arn
}

output "log_bucket_name" {
  description = "This region's access-log bucket."
  value       = module.storage.log_bucket_name
}

output "blob_bucket_name" {
  description = "This region's sealed-blob bucket."
  value       = module.storage.blob_bucket_name
}

output "blob_bucket_arn" {
  description = "ARN of this region's sealed-blob bucket (the previous region of the ring replicates into it)."
  value       = module.storage.blob_bucket_arn
}

output "storage_kms_key_arn" {
  description = "This region's storage key (the previous region's replicas are encrypted under it)."
  value       = module.storage.storage_kms_key_arn
}

output "kms_key_arns" {
  description = "Every KMS key this region's resources made (its nodes', the storage, trail and logs keys): their administration pages (modules/monitoring)."
  value = concat(
    [for i in sort(keys(module.node)) : module.node[i].kms_key_arn],
    [module.storage.storage_kms_key_arn, module.storage.trail_kms_key_arn, module.network.logs_kms_key_arn, module.network.session_kms_key_arn],
  )
}

output "nodes" {
  description = "The nodes homed here, by index: placement, proxy, KMS key, parent role, Auto Scaling group, blob bucket."
  value = {
    for i, n in module.node : i => {
      az                     = var.nodes[i].az
      proxy_ip               = n.proxy_ip
      proxy_url              = n.proxy_url
      kms_key_arn            = n.kms_key_arn
      kms_key_multi_region   = n.kms_key_multi_region
      kms_key_policy         = n.kms_key_policy
      parent_role_arn        = n.parent_role_arn
      parent_pcr3            = n.parent_pcr3
      autoscaling_group_name = n.autoscaling_group_name
      log_metrics            = n.log_metrics
      proxy_tunnel_document  = n.proxy_tunnel_document.name
      blob_bucket            = module.storage.blob_bucket_name
    }
  }
}
