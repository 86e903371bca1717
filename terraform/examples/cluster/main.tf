# A whole Cohort cluster: the network, the sealed-blob storage, node_count signing nodes (each
# with its parent instance, enclave and attestation-gated KMS key), the coordinators with their
# database and client API load balancer, and the alarms.

locals {
  nodes = {
    for i in range(var.node_count) :
    tostring(i) => lookup(var.node_az_overrides, tostring(i), var.azs[i % length(var.azs)])
  }
}

module "measurements" {
  source = "../../modules/measurements"
  files  = var.measurements_files
}

module "network" {
  source = "../../modules/network"

  name                     = var.name
  vpc_cidr                 = var.vpc_cidr
  azs                      = var.azs
  client_cidrs             = var.client_cidrs
  coordinator_egress_cidrs = var.coordinator_egress_cidrs
  s3_bucket_names          = [var.artifact_bucket, module.storage.blob_bucket_name]
  session_preferences      = var.session_preferences
  tags                     = var.tags
}

module "storage" {
  source = "../../modules/storage"

  name                = var.name
  admin_principal_arn = var.admin_principal_arn
  blob_lock_mode      = var.blob_lock_mode
  tags                = var.tags
}

module "node" {
  source   = "../../modules/node"
  for_each = local.nodes

  name                = var.name
  node_index          = tonumber(each.key)
  subnet_id           = module.network.app_subnet_ids_by_az[each.value]
  security_group_id   = module.network.security_group_ids.node
  proxy_port          = module.network.proxy_port
  measurements_files  = var.measurements_files
  parent_pcr3         = lookup(var.parent_pcr3, each.key, null)
  admin_principal_arn = var.admin_principal_arn
  instance_type       = var.node_instance_type
  ami_id              = var.node_ami_id
  enclave_cpu_count   = var.enclave_cpu_count
  enclave_memory_mib  = var.enclave_memory_mib

  artifact_bucket      = var.artifact_bucket
  artifact_kms_key_arn = var.artifact_kms_key_arn
  eif_key              = var.eif_key
  proxy_binary_key     = var.proxy_binary_key

  blob_bucket_name      = module.storage.blob_bucket_name
  storage_kms_key_arn   = module.storage.storage_kms_key_arn
  logs_kms_key_arn      = module.network.logs_kms_key_arn
  session_log_group_arn = module.network.session_log_group_arn
  session_kms_key_arn   = module.network.session_kms_key_arn
  tags                  = var.tags
}

module "coordinator" {
  source = "../../modules/coordinator"

  name               = var.name
  vpc_id             = module.network.vpc_id
  app_subnet_ids     = module.network.app_subnet_ids
  public_subnet_ids  = module.network.public_subnet_ids
  data_subnet_ids    = module.network.data_subnet_ids
  security_group_ids = module.network.security_group_ids

  # In node order: --proxy is positional, and the coordinator's node i (API, metrics, audit,
  # quorums) is its i-th --proxy, so node i here is node i there (docs/operator-guide.md, "Node numbering").
  proxy_urls         = [for i in range(var.node_count) : module.node[tostring(i)].proxy_url]
  measurements_files = var.measurements_files

  artifact_bucket        = var.artifact_bucket
  artifact_kms_key_arn   = var.artifact_kms_key_arn
  coordinator_binary_key = var.coordinator_binary_key
  db_ca_bundle_key       = var.db_ca_bundle_key
  admin_principal_arn    = var.admin_principal_arn
  admin_api_keys         = var.admin_api_keys

  instance_type          = var.coordinator_instance_type
  ami_id                 = var.coordinator_ami_id
  coordinator_count      = var.coordinator_count
  db_instance_class      = var.db_instance_class
  load_balancer_internal = var.load_balancer_internal
  certificate_arn        = var.certificate_arn
  log_bucket_name        = module.storage.log_bucket_name
  logs_kms_key_arn       = module.network.logs_kms_key_arn
  session_log_group_arn  = module.network.session_log_group_arn
  session_kms_key_arn    = module.network.session_kms_key_arn
  tags                   = var.tags
}

module "monitoring" {
  source = "../../modules/monitoring"

  name                          = var.name
  alarm_email                   = var.alarm_email
  threshold                     = var.threshold
  node_asg_names                = { for i, n in module.node : i => n.autoscaling_group_name }
  tunnel_document_names         = [for i in sort(keys(module.node)) : module.node[i].proxy_tunnel_document.name]
  node_log_metrics              = { for i, n in module.node : i => n.log_metrics }
  coordinator_asg_name          = module.coordinator.autoscaling_group_name
  coordinator_count             = module.coordinator.coordinator_count
  coordinator_metrics_namespace = module.coordinator.metrics_namespace
  load_balancer_arn_suffix      = module.coordinator.load_balancer_arn_suffix
  target_group_arn_suffix       = module.coordinator.target_group_arn_suffix
  db_instance_identifier        = module.coordinator.db_instance_identifier
  db_allocated_storage_gb       = module.coordinator.db_allocated_storage_gb
  watched_kms_key_arns = concat(
    [for i in sort(keys(module.node)) : module.node[i].kms_key_arn],
    [module.storage.storage_kms_key_arn, module.storage.trail_kms_key_arn, module.network.logs_kms_key_arn, module.network.session_kms_key_arn, module.coordinator.database_kms_key_arn],
  )
  tags = var.tags
}
