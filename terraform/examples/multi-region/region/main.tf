# One region of a multi-region cluster: its VPC, its sealed-blob storage and the signing nodes
# homed here (their KMS keys multi-Region keys). What crosses to another region (peering, blob
# replication, the node keys' replicas) is ../link's, and the coordinators (regions a and b) the
# root's: a region refers to no other region, so that the three never refer to each other in a
# circle.

module "network" {
  source = "../../../modules/network"

  name                     = var.name
  vpc_cidr                 = var.vpc_cidr
  azs                      = var.azs
  client_cidrs             = var.client_cidrs
  coordinator_egress_cidrs = var.coordinator_egress_cidrs
  peer_proxy_cidrs         = var.peer_proxy_cidrs
  peer_coordinator_cidrs   = var.peer_coordinator_cidrs
  s3_bucket_names          = [var.artifact_bucket, module.storage.blob_bucket_name]
  session_preferences      = var.session_preferences
  tags                     = var.tags
}

# The bucket holds this region's nodes under node-I/ and, replicated from the previous region
# of the ring (../link), that region's nodes under theirs (each node's role reaches only its own
# prefix).
module "storage" {
  source = "../../../modules/storage"

  name                = var.name
  admin_principal_arn = var.admin_principal_arn
  blob_lock_mode      = var.blob_lock_mode
  tags                = var.tags
}

# Each node as in the single-region example, its KMS key a multi-Region primary key.
module "node" {
  source   = "../../../modules/node"
  for_each = var.nodes

  name               = var.name
  node_index         = tonumber(each.key)
  subnet_id          = module.network.app_subnet_ids_by_az[each.value.az]
  security_group_id  = module.network.security_group_ids.node
  proxy_port         = module.network.proxy_port
  measurements_files = var.measurements_files
  parent_pcr3        = each.value.parent_pcr3

  admin_principal_arn  = var.admin_principal_arn
  kms_multi_region     = true
  kms_replica_regions  = [var.kms_replica_region]
  artifact_bucket      = var.artifact_bucket
  artifact_kms_key_arn = var.artifact_kms_key_arn
  eif_key              = var.eif_key
  proxy_binary_key     = var.proxy_binary_key

  blob_bucket_name      = module.storage.blob_bucket_name
  storage_kms_key_arn   = module.storage.storage_kms_key_arn
  logs_kms_key_arn      = module.network.logs_kms_key_arn
  session_log_group_arn = module.network.session_log_group_arn
  session_kms_key_arn   = module.network.session_kms_key_arn

  instance_type      = var.node_instance_type
  ami_id             = var.node_ami_id
  enclave_cpu_count  = var.enclave_cpu_count
  enclave_memory_mib = var.enclave_memory_mib
  tags               = var.tags
}
