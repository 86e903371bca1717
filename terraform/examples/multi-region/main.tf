# A Cohort cluster over three AWS regions (docs/regions.md): by default a 2-of-3 cluster with one
# node per region, so that losing any one region leaves a signing quorum.
#
#   slot a (primary)            slot b (standby)               slot c
#   node 0                      node 1                         node 2
#   PostgreSQL primary  ──────▶ read replica (promoted on a
#   coordinators (active)       failover), coordinators (0)
#   node 0's blobs, key ──────▶ their replicas
#                               node 1's blobs, key ─────────▶ their replicas
#   their replicas ◀──────────────────────────────────────── node 2's blobs, key
#   VPC ◀──── peering ────────▶ VPC ◀──── peering ──────────▶ VPC  (and c ◀──▶ a)
#
# Each region is ./region (its network, storage and nodes); each ./link keeps one region's
# replicas in the next region of the ring a -> b -> c -> a and peers the two; the coordinators
# run in a and b with the shared modules. Every module call names its region's provider. No
# region refers to another: the links and coordinators refer to regions, never the reverse.

locals {
  slots = ["a", "b", "c"]
  names = { for s in local.slots : s => "${var.name}-${s}" }

  # Node index => slot: round-robin over a, b, c, unless node_regions says otherwise (the
  # threshold's validation checks the same placement).
  node_slot = {
    for i in range(var.node_count) : tostring(i) => lookup(var.node_regions, tostring(i), local.slots[i % 3])
  }
  # Within its region a node goes round-robin over that region's AZs, by its rank there.
  slot_nodes = { for s in local.slots : s => [for i in range(var.node_count) : tostring(i) if local.node_slot[tostring(i)] == s] }
  nodes = {
    for s in local.slots : s => {
      for rank, i in local.slot_nodes[s] : i => {
        az          = var.regions[s].azs[rank % length(var.regions[s].azs)]
        parent_pcr3 = lookup(var.parent_pcr3, i, null)
      }
    }
  }

  # What each region's loss leaves: the nodes elsewhere, and whether they still reach t.
  region_loss = {
    for lost in local.slots : lost => {
      region     = var.regions[lost].region
      nodes_left = [for i in range(var.node_count) : tostring(i) if local.node_slot[tostring(i)] != lost]
      can_sign   = length([for i in range(var.node_count) : i if local.node_slot[tostring(i)] != lost]) >= var.threshold
    }
  }

  # Regions a and b run coordinators; a region with nodes lets the other coordinator regions'
  # application subnets reach its proxies (the network module opens the proxy port only). The
  # application subnets' ranges as modules/network makes them (tier offset 16 + the AZ's index,
  # one /24 each at a /16), computed here from the variables so that no region refers to another
  # (the test checks them against the modules' outputs).
  coordinator_slots = ["a", "b"]
  app_cidrs = {
    for s, r in var.regions : s => [
      for i, az in r.azs : cidrsubnet(r.vpc_cidr, 24 - tonumber(split("/", r.vpc_cidr)[1]), 16 + i)
    ]
  }
  peer_proxy_cidrs = {
    for s in local.slots : s => !contains(local.coordinator_slots, s) ? [] : flatten([
      for t in local.slots : local.app_cidrs[t] if t != s && length(local.slot_nodes[t]) > 0
    ])
  }
  peer_coordinator_cidrs = {
    for s in local.slots : s => length(local.slot_nodes[s]) == 0 ? [] : flatten([
      for t in local.coordinator_slots : local.app_cidrs[t] if t != s
    ])
  }

  all_nodes    = merge(module.region_a.nodes, module.region_b.nodes, module.region_c.nodes)
  kms_replicas = merge(module.link_a_b.kms_replicas, module.link_b_c.kms_replicas, module.link_c_a.kms_replicas)
  proxy_urls   = [for i in range(var.node_count) : local.all_nodes[tostring(i)].proxy_url]

  # The standby's secret is Secrets Manager's replica of the primary's: the same ARN but for the
  # region.
  standby_secret_arn = replace(module.coordinator_a.db_secret_arn, ":${var.regions["a"].region}:", ":${var.regions["b"].region}:")

  # Each region as the links see it (named outputs only).
  link_ends = {
    a = {
      vpc_id              = module.region_a.vpc_id
      vpc_cidr            = module.region_a.vpc_cidr
      app_route_table_ids = module.region_a.app_route_table_ids
      blob_bucket_name    = module.region_a.blob_bucket_name
      blob_bucket_arn     = module.region_a.blob_bucket_arn
      storage_kms_key_arn = module.region_a.storage_kms_key_arn
    }
    b = {
      vpc_id              = module.region_b.vpc_id
      vpc_cidr            = module.region_b.vpc_cidr
      app_route_table_ids = module.region_b.app_route_table_ids
      blob_bucket_name    = module.region_b.blob_bucket_name
      blob_bucket_arn     = module.region_b.blob_bucket_arn
      storage_kms_key_arn = module.region_b.storage_kms_key_arn
    }
    c = {
      vpc_id              = module.region_c.vpc_id
      vpc_cidr            = module.region_c.vpc_cidr
      app_route_table_ids = module.region_c.app_route_table_ids
      blob_bucket_name    = module.region_c.blob_bucket_name
      blob_bucket_arn     = module.region_c.blob_bucket_arn
      storage_kms_key_arn = module.region_c.storage_kms_key_arn
    }
  }

  # What the three regions share.
  region_settings = {
    client_cidrs             = var.client_cidrs
    coordinator_egress_cidrs = var.coordinator_egress_cidrs
    measurements_files       = var.measurements_files
    admin_principal_arn      = var.admin_principal_arn
    eif_key                  = var.eif_key
    proxy_binary_key         = var.proxy_binary_key
    node_instance_type       = var.node_instance_type
    enclave_cpu_count        = var.enclave_cpu_count
    enclave_memory_mib       = var.enclave_memory_mib
  }
}

# --- The regions --------------------------------------------------------------------------------

module "region_a" {
  source    = "./region"
  providers = { aws = aws.a }

  name                     = local.names.a
  azs                      = var.regions["a"].azs
  vpc_cidr                 = var.regions["a"].vpc_cidr
  kms_replica_region       = var.regions["b"].region
  nodes                    = local.nodes.a
  peer_proxy_cidrs         = local.peer_proxy_cidrs.a
  peer_coordinator_cidrs   = local.peer_coordinator_cidrs.a
  artifact_bucket          = var.regions["a"].artifact_bucket
  artifact_kms_key_arn     = var.regions["a"].artifact_kms_key_arn
  node_ami_id              = var.regions["a"].ami_id
  session_preferences      = var.session_preferences
  blob_lock_mode           = var.blob_lock_mode
  client_cidrs             = local.region_settings.client_cidrs
  coordinator_egress_cidrs = local.region_settings.coordinator_egress_cidrs
  measurements_files       = local.region_settings.measurements_files
  admin_principal_arn      = local.region_settings.admin_principal_arn
  eif_key                  = local.region_settings.eif_key
  proxy_binary_key         = local.region_settings.proxy_binary_key
  node_instance_type       = local.region_settings.node_instance_type
  enclave_cpu_count        = local.region_settings.enclave_cpu_count
  enclave_memory_mib       = local.region_settings.enclave_memory_mib
  tags                     = var.tags
}

module "region_b" {
  source    = "./region"
  providers = { aws = aws.b }

  name                     = local.names.b
  azs                      = var.regions["b"].azs
  vpc_cidr                 = var.regions["b"].vpc_cidr
  kms_replica_region       = var.regions["c"].region
  nodes                    = local.nodes.b
  peer_proxy_cidrs         = local.peer_proxy_cidrs.b
  peer_coordinator_cidrs   = local.peer_coordinator_cidrs.b
  artifact_bucket          = var.regions["b"].artifact_bucket
  artifact_kms_key_arn     = var.regions["b"].artifact_kms_key_arn
  node_ami_id              = var.regions["b"].ami_id
  session_preferences      = var.session_preferences
  blob_lock_mode           = var.blob_lock_mode
  client_cidrs             = local.region_settings.client_cidrs
  coordinator_egress_cidrs = local.region_settings.coordinator_egress_cidrs
  measurements_files       = local.region_settings.measurements_files
  admin_principal_arn      = local.region_settings.admin_principal_arn
  eif_key                  = local.region_settings.eif_key
  proxy_binary_key         = local.region_settings.proxy_binary_key
  node_instance_type       = local.region_settings.node_instance_type
  enclave_cpu_count        = local.region_settings.enclave_cpu_count
  enclave_memory_mib       = local.region_settings.enclave_memory_mib
  tags                     = var.tags
}

# Region c has no coordinators: its client API settings stay empty.
module "region_c" {
  source    = "./region"
  providers = { aws = aws.c }

  name                   = local.names.c
  azs                    = var.regions["c"].azs
  vpc_cidr               = var.regions["c"].vpc_cidr
  kms_replica_region     = var.regions["a"].region
  nodes                  = local.nodes.c
  peer_proxy_cidrs       = local.peer_proxy_cidrs.c
  peer_coordinator_cidrs = local.peer_coordinator_cidrs.c
  artifact_bucket        = var.regions["c"].artifact_bucket
  artifact_kms_key_arn   = var.regions["c"].artifact_kms_key_arn
  node_ami_id            = var.regions["c"].ami_id
  session_preferences    = var.session_preferences
  blob_lock_mode         = var.blob_lock_mode
  measurements_files     = local.region_settings.measurements_files
  admin_principal_arn    = local.region_settings.admin_principal_arn
  eif_key                = local.region_settings.eif_key
  proxy_binary_key       = local.region_settings.proxy_binary_key
  node_instance_type     = local.region_settings.node_instance_type
  enclave_cpu_count      = local.region_settings.enclave_cpu_count
  enclave_memory_mib     = local.region_settings.enclave_memory_mib
  tags                   = var.tags
}

# --- The ring: each region's replicas in the next region, and the peering ---------------------

module "link_a_b" {
  source    = "./link"
  providers = { aws = aws.a, aws.next = aws.b }

  name        = local.names.a
  next_name   = local.names.b
  next_region = var.regions["b"].region
  from        = local.link_ends.a
  to          = local.link_ends.b
  nodes       = { for i, n in module.region_a.nodes : i => { kms_key_arn = n.kms_key_arn, kms_key_policy = n.kms_key_policy } }
  tags        = var.tags
}

module "link_b_c" {
  source    = "./link"
  providers = { aws = aws.b, aws.next = aws.c }

  name        = local.names.b
  next_name   = local.names.c
  next_region = var.regions["c"].region
  from        = local.link_ends.b
  to          = local.link_ends.c
  nodes       = { for i, n in module.region_b.nodes : i => { kms_key_arn = n.kms_key_arn, kms_key_policy = n.kms_key_policy } }
  tags        = var.tags
}

module "link_c_a" {
  source    = "./link"
  providers = { aws = aws.c, aws.next = aws.a }

  name        = local.names.c
  next_name   = local.names.a
  next_region = var.regions["a"].region
  from        = local.link_ends.c
  to          = local.link_ends.a
  nodes       = { for i, n in module.region_c.nodes : i => { kms_key_arn = n.kms_key_arn, kms_key_policy = n.kms_key_policy } }
  tags        = var.tags
}

# --- The coordinators and their database ----------------------------------------------------

# The key of the database credentials' replica in region b. Its own key rather than region b's
# database key: the primary's secret names it, and region b's coordinator module follows region
# a's database, so the two coordinator modules would otherwise refer to each other. IAM policies
# grant its use (the standby coordinators' role: decrypt through Secrets Manager only).
module "account_b" {
  source    = "../../modules/account"
  providers = { aws = aws.b }
}

module "db_secret_key_b" {
  source    = "../../modules/kms_key"
  providers = { aws = aws.b }

  name                = "${local.names.b}-database-secret"
  description         = "${local.names.b}: replica of the coordinators' database credentials (from ${var.regions["a"].region})"
  account_root_arn    = module.account_b.account_root
  admin_principal_arn = var.admin_principal_arn
  tags                = var.tags
}

# Region a: the database's primary, replicated to region b. Its master password is the
# operator's (RDS makes no read replica of an instance whose password it manages), and its
# secret is replicated to b under the key above. After a failover its coordinators stop: its
# database, if the region comes back, is behind the promoted replica and must not be written.
module "coordinator_a" {
  source    = "../../modules/coordinator"
  providers = { aws = aws.a }

  name               = local.names.a
  vpc_id             = module.region_a.vpc_id
  app_subnet_ids     = module.region_a.app_subnet_ids
  public_subnet_ids  = module.region_a.public_subnet_ids
  data_subnet_ids    = module.region_a.data_subnet_ids
  security_group_ids = module.region_a.security_group_ids

  # In node order, every region's nodes: --proxy is positional.
  proxy_urls         = local.proxy_urls
  measurements_files = var.measurements_files

  artifact_bucket        = var.regions["a"].artifact_bucket
  artifact_kms_key_arn   = var.regions["a"].artifact_kms_key_arn
  coordinator_binary_key = var.coordinator_binary_key
  db_ca_bundle_key       = var.db_ca_bundle_key
  admin_principal_arn    = var.admin_principal_arn
  admin_api_keys         = var.admin_api_keys

  db_secret_replicas  = var.failed_over ? {} : { (var.regions["b"].region) = module.db_secret_key_b.arn }
  db_master_password  = var.db_master_password
  db_password_version = var.db_password_version

  instance_type          = var.coordinator_instance_type
  coordinator_count      = var.failed_over ? 0 : var.coordinator_count
  db_instance_class      = var.db_instance_class
  load_balancer_internal = var.load_balancer_internal
  certificate_arn        = var.regions["a"].certificate_arn
  ami_id                 = var.regions["a"].ami_id
  log_bucket_name        = module.region_a.log_bucket_name
  logs_kms_key_arn       = module.region_a.logs_kms_key_arn
  session_log_group_arn  = module.region_a.session_log_group_arn
  session_kms_key_arn    = module.region_a.session_kms_key_arn
  tags                   = var.tags
}

# Region b: the read replica, and coordinators at zero until a failover. A replica refuses writes
# and the coordinators migrate their schema at start, so they cannot run before the promotion;
# everything else (load balancer, WAF, launch template, the replicated secret) is in place.
module "coordinator_b" {
  source    = "../../modules/coordinator"
  providers = { aws = aws.b }

  name               = local.names.b
  vpc_id             = module.region_b.vpc_id
  app_subnet_ids     = module.region_b.app_subnet_ids
  public_subnet_ids  = module.region_b.public_subnet_ids
  data_subnet_ids    = module.region_b.data_subnet_ids
  security_group_ids = module.region_b.security_group_ids

  proxy_urls         = local.proxy_urls
  measurements_files = var.measurements_files

  artifact_bucket        = var.regions["b"].artifact_bucket
  artifact_kms_key_arn   = var.regions["b"].artifact_kms_key_arn
  coordinator_binary_key = var.coordinator_binary_key
  db_ca_bundle_key       = var.db_ca_bundle_key
  admin_principal_arn    = var.admin_principal_arn
  admin_api_keys         = var.admin_api_keys

  # failed_over: the replica and the secret were promoted (docs/regions.md); Terraform then
  # only stops treating them as replicas.
  db_replica_of = {
    source_db_arn      = module.coordinator_a.db_instance_arn
    secret_arn         = local.standby_secret_arn
    secret_kms_key_arn = module.db_secret_key_b.arn
    promoted           = var.failed_over
  }

  instance_type          = var.coordinator_instance_type
  coordinator_count      = var.failed_over ? var.coordinator_count : 0
  db_instance_class      = var.db_instance_class
  load_balancer_internal = var.load_balancer_internal
  certificate_arn        = var.regions["b"].certificate_arn
  ami_id                 = var.regions["b"].ami_id
  log_bucket_name        = module.region_b.log_bucket_name
  logs_kms_key_arn       = module.region_b.logs_kms_key_arn
  session_log_group_arn  = module.region_b.session_log_group_arn
  session_kms_key_arn    = module.region_b.session_kms_key_arn
  tags                   = var.tags
}

# --- Alarms, per region (CloudWatch alarms see their own region's metrics only) ----------------

# The healthy-nodes alarm counts every node, wherever it runs, as the coordinators of its region
# see them; the standby region's treats missing data as healthy while its coordinators are off.
module "monitoring_a" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.a }

  name                          = local.names.a
  alarm_email                   = var.alarm_email
  threshold                     = var.threshold
  node_asg_names                = { for i, n in module.region_a.nodes : i => n.autoscaling_group_name }
  tunnel_document_names         = [for i in sort(keys(module.region_a.nodes)) : module.region_a.nodes[i].proxy_tunnel_document]
  node_log_metrics              = { for i, n in module.region_a.nodes : i => n.log_metrics }
  healthy_node_indices          = keys(local.node_slot)
  healthy_nodes_missing_data    = var.failed_over ? "notBreaching" : "breaching"
  coordinator_asg_name          = module.coordinator_a.autoscaling_group_name
  coordinator_count             = module.coordinator_a.coordinator_count
  coordinator_metrics_namespace = module.coordinator_a.metrics_namespace
  load_balancer_arn_suffix      = module.coordinator_a.load_balancer_arn_suffix
  target_group_arn_suffix       = module.coordinator_a.target_group_arn_suffix
  db_instance_identifier        = module.coordinator_a.db_instance_identifier
  db_allocated_storage_gb       = module.coordinator_a.db_allocated_storage_gb
  watched_kms_key_arns          = concat(module.region_a.kms_key_arns, [module.coordinator_a.database_kms_key_arn], [for r in values(module.link_c_a.kms_replicas) : r.arn])
  tags                          = var.tags
}

module "monitoring_b" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.b }

  name                          = local.names.b
  alarm_email                   = var.alarm_email
  threshold                     = var.threshold
  node_asg_names                = { for i, n in module.region_b.nodes : i => n.autoscaling_group_name }
  tunnel_document_names         = [for i in sort(keys(module.region_b.nodes)) : module.region_b.nodes[i].proxy_tunnel_document]
  node_log_metrics              = { for i, n in module.region_b.nodes : i => n.log_metrics }
  healthy_node_indices          = keys(local.node_slot)
  healthy_nodes_missing_data    = var.failed_over ? "breaching" : "notBreaching"
  coordinator_asg_name          = module.coordinator_b.autoscaling_group_name
  coordinator_count             = module.coordinator_b.coordinator_count
  coordinator_metrics_namespace = module.coordinator_b.metrics_namespace
  load_balancer_arn_suffix      = module.coordinator_b.load_balancer_arn_suffix
  target_group_arn_suffix       = module.coordinator_b.target_group_arn_suffix
  db_instance_identifier        = module.coordinator_b.db_instance_identifier
  db_allocated_storage_gb       = module.coordinator_b.db_allocated_storage_gb
  watched_kms_key_arns          = concat(module.region_b.kms_key_arns, [module.coordinator_b.database_kms_key_arn], [for r in values(module.link_a_b.kms_replicas) : r.arn])
  tags                          = var.tags
}

# Region c: its nodes' alarms only.
module "monitoring_c" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.c }

  name                  = local.names.c
  alarm_email           = var.alarm_email
  threshold             = var.threshold
  node_asg_names        = { for i, n in module.region_c.nodes : i => n.autoscaling_group_name }
  tunnel_document_names = [for i in sort(keys(module.region_c.nodes)) : module.region_c.nodes[i].proxy_tunnel_document]
  node_log_metrics      = { for i, n in module.region_c.nodes : i => n.log_metrics }
  watched_kms_key_arns  = concat(module.region_c.kms_key_arns, [for r in values(module.link_b_c.kms_replicas) : r.arn])
  tags                  = var.tags
}
