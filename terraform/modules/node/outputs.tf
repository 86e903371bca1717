output "node_index" {
  description = "This node's index, from 0: the coordinators' node i is their i-th --proxy."
  value       = var.node_index
}

output "proxy_ip" {
  description = "The proxy's private IP: stable across instance replacements (fixed network interface)."
  value       = aws_network_interface.proxy.private_ip
}

output "proxy_url" {
  description = "The coordinators' --proxy URL of this node."
  value       = "http://${aws_network_interface.proxy.private_ip}:${var.proxy_port}"
}

output "kms_key_arn" {
  description = "This node's attestation-gated KMS key (the proxy's --kms-key-id)."
  value       = module.key.arn
}

output "kms_key_policy" {
  description = "This node's KMS key policy, as JSON (same statements as `cohort kms policy`)."
  value       = module.key.policy
}

output "parent_role_arn" {
  description = "IAM role of the parent instance."
  value       = module.role.arn
}

output "parent_pcr3" {
  description = "The PCR3 the node's KMS key requires (its parent role's, as given), or null."
  value       = var.parent_pcr3
}

output "proxy_tunnel_document" {
  description = "The Session Manager document that forwards a local port to this node's proxy port and nowhere else (`aws ssm start-session --document-name ...`)."
  value = {
    name    = aws_ssm_document.proxy_tunnel.name
    arn     = aws_ssm_document.proxy_tunnel.arn
    content = jsondecode(aws_ssm_document.proxy_tunnel.content)
  }
}

output "autoscaling_group_name" {
  description = "The node's Auto Scaling group (always one instance)."
  value       = module.group.autoscaling_group_name
}

output "network_interface_id" {
  description = "The node's fixed network interface."
  value       = aws_network_interface.proxy.id
}

output "log_group_name" {
  description = "CloudWatch log group of the node's proxy."
  value       = aws_cloudwatch_log_group.node.name
}

output "kms_key_multi_region" {
  description = "Whether this node's KMS key is a multi-Region primary key."
  value       = module.key.multi_region
}

output "ami_id" {
  description = "The AMI this parent's instances start from: pin it with ami_id."
  value       = module.group.ami_id
}

output "log_metrics" {
  description = "The metrics counted from the node's log group (modules/monitoring alarms on them): namespace, and the metric names of the enclave's failed KMS calls and of the failed blob copies."
  value = {
    namespace          = var.log_metrics_namespace
    kms_failures       = local.log_metrics.kms_failures.metric
    blob_sync_failures = local.log_metrics.blob_sync_failures.metric
  }
}
