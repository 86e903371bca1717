output "blob_replication" {
  description = "Where the starting region's sealed blobs are replicated: destination bucket, KMS key and region, the prefixes, S3's role (null without nodes)."
  value = length(var.nodes) == 0 ? null : {
    destination_bucket_arn  = module.blob_replication[0].destination_bucket_arn
    destination_kms_key_arn = module.blob_replication[0].destination_kms_key_arn
    destination_region      = module.blob_replication[0].destination_region
    prefixes                = module.blob_replication[0].prefixes
    role_arn                = module.blob_replication[0].role_arn
  }
}

output "kms_replicas" {
  description = "Per node of the starting region: its KMS key's replica in the next region (ARN, region, the primary it replicates, policy)."
  value = {
    for i, k in aws_kms_replica_key.node : i => {
      arn     = k.arn
      region  = var.next_region
      primary = k.primary_key_arn
      policy  = k.policy
    }
  }
}

output "peering_connection_id" {
  description = "The VPC peering of the two regions."
  value       = aws_vpc_peering_connection.this.id
}

output "routes" {
  description = "The peering's routes: the starting region's application route tables to the next VPC, and the next region's back, by AZ."
  value = {
    to_next   = { for az, r in aws_route.to_next : az => r.destination_cidr_block }
    from_next = { for az, r in aws_route.from_next : az => r.destination_cidr_block }
  }
}
