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
      parent_pcr3            = n.parent_pcr3
      autoscaling_group_name = n.autoscaling_group_name
      proxy_tunnel_document  = n.proxy_tunnel_document.name
    }
  }
}

output "genesis_prepare_args" {
  description = "What `cohort genesis prepare` takes from this deployment, 0-based as the roster counts: each node's KMS key (--kms-key=I=ARN) and, where pinned, its parent PCR3 (--pcr3=I=HEX)."
  value = concat(
    [for i in range(var.node_count) : "--kms-key=${i}=${module.node[tostring(i)].kms_key_arn}"],
    [
      for i in range(var.node_count) : "--pcr3=${i}=${module.node[tostring(i)].parent_pcr3}"
      if module.node[tostring(i)].parent_pcr3 != null
    ],
  )
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

output "ami_ids" {
  description = "The AMIs the parents (by node) and the coordinators start from: pin them with node_ami_id and coordinator_ami_id."
  value = {
    nodes       = { for i, n in module.node : i => n.ami_id }
    coordinator = module.coordinator.ami_id
  }
}
