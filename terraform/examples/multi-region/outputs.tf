output "coordinator_urls" {
  description = "The client API of each coordinator region: a (active) and b (started on a failover). Point the client DNS name at the active one's load balancer."
  value = {
    a = module.coordinator_a.client_api_url
    b = module.coordinator_b.client_api_url
  }
}

output "load_balancer_dns_names" {
  description = "DNS name of each coordinator region's client API load balancer."
  value = {
    a = module.coordinator_a.load_balancer_dns_name
    b = module.coordinator_b.load_balancer_dns_name
  }
}

output "active_coordinator_region" {
  description = "The region whose coordinators serve (failed_over moves them from a to b)."
  value       = var.failed_over ? var.regions["b"].region : var.regions["a"].region
}

output "nodes" {
  description = "Per node: its region slot and region, AZ, the proxy's stable IP and URL, its multi-Region KMS key and the replica key in the next region, its parent role and PCR3, its Auto Scaling group and sealed-blob bucket."
  value = {
    for i, n in local.all_nodes : i => {
      slot                   = local.node_slot[i]
      region                 = var.regions[local.node_slot[i]].region
      az                     = n.az
      proxy_ip               = n.proxy_ip
      proxy_url              = n.proxy_url
      kms_key_arn            = n.kms_key_arn
      kms_key_multi_region   = n.kms_key_multi_region
      kms_replica_key_arn    = local.kms_replicas[i].arn
      kms_replica_region     = local.kms_replicas[i].region
      kms_replica_primary    = local.kms_replicas[i].primary
      parent_role_arn        = n.parent_role_arn
      parent_pcr3            = n.parent_pcr3
      autoscaling_group_name = n.autoscaling_group_name
      blob_bucket            = n.blob_bucket
    }
  }
}

output "region_loss" {
  description = "For each region slot: the region, the nodes left if it is lost, and whether they still reach the threshold."
  value       = local.region_loss
}

output "genesis_prepare_args" {
  description = "What `cohort genesis prepare` takes from this deployment, 0-based as the roster counts: each node's KMS key in its home region (--kms-key=I=ARN) and, where pinned, its parent PCR3 (--pcr3=I=HEX)."
  value = concat(
    [for i in range(var.node_count) : "--kms-key=${i}=${local.all_nodes[tostring(i)].kms_key_arn}"],
    [
      for i in range(var.node_count) : "--pcr3=${i}=${local.all_nodes[tostring(i)].parent_pcr3}"
      if local.all_nodes[tostring(i)].parent_pcr3 != null
    ],
  )
}

output "kms_key_policies" {
  description = "Each node's KMS key policy as JSON (its replica has the same). It is `cohort kms policy --node I --measurements FILE --parent-role ARN --admin ARN` with kms:ReplicateKey added to KeyAdministration (docs/regions.md)."
  value       = { for i, n in local.all_nodes : i => n.kms_key_policy }
}

output "kms_replica_key_policies" {
  description = "Each node's replica key policy as JSON (the same statements as its primary's)."
  value       = { for i, r in local.kms_replicas : i => r.policy }
}

output "blob_replication" {
  description = "Per region slot: its sealed-blob bucket and where its nodes' blobs are replicated (destination bucket, KMS key and region, prefixes; null without nodes)."
  value = {
    a = { bucket = module.region_a.blob_bucket_name, replication = module.link_a_b.blob_replication }
    b = { bucket = module.region_b.blob_bucket_name, replication = module.link_b_c.blob_replication }
    c = { bucket = module.region_c.blob_bucket_name, replication = module.link_c_a.blob_replication }
  }
}

output "database" {
  description = "The coordinators' PostgreSQL: the primary in region a and its read replica in region b (promoted on a failover), each one's endpoint, mode and credentials secret."
  value = {
    primary = {
      region            = var.regions["a"].region
      endpoint          = module.coordinator_a.db_endpoint
      identifier        = module.coordinator_a.db_instance_identifier
      arn               = module.coordinator_a.db_instance_arn
      mode              = module.coordinator_a.db_mode
      secret_arn        = module.coordinator_a.db_secret_arn
      secret_replicated = module.coordinator_a.db_secret_replica_regions
    }
    replica = {
      region     = var.regions["b"].region
      endpoint   = module.coordinator_b.db_endpoint
      identifier = module.coordinator_b.db_instance_identifier
      mode       = module.coordinator_b.db_mode
      source     = module.coordinator_b.db_replicate_source_db
      secret_arn = module.coordinator_b.db_secret_arn
    }
  }
}

output "peering" {
  description = "The VPC peerings of the ring (each region with the next) and their routes."
  value = {
    a_b = { id = module.link_a_b.peering_connection_id, routes = module.link_a_b.routes }
    b_c = { id = module.link_b_c.peering_connection_id, routes = module.link_b_c.routes }
    c_a = { id = module.link_c_a.peering_connection_id, routes = module.link_c_a.routes }
  }
}

output "measurements" {
  description = "The enclave image measurements files in effect."
  value       = var.measurements_files
}

output "alarm_topic_arns" {
  description = "SNS topic of each region's alarms."
  value = {
    a = module.monitoring_a.alarm_topic_arn
    b = module.monitoring_b.alarm_topic_arn
    c = module.monitoring_c.alarm_topic_arn
  }
}
