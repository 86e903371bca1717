# PostgreSQL shared by the coordinators: Multi-AZ, encrypted under its own key, TLS required
# (rds.force_ssl), deletion protection, automated backups, IAM authentication on, Performance
# Insights and enhanced monitoring. The master password is generated and kept by RDS in Secrets
# Manager (manage_master_user_password); coordinators read it at start (files/db-env.sh.tftpl)
# and check the server's certificate against the RDS CA bundle (db_ca_bundle_key).
#
# Across regions (examples/multi-region, docs/regions.md) the database is one of:
#
# * "replicated": the primary of cross-region read replicas (db_secret_replicas). RDS makes no
#   read replica of an instance whose master password it manages, so here the password is the
#   operator's (db_master_password, an ephemeral variable), written through write-only arguments
#   to the instance and to a secret this module keeps, which Secrets Manager replicates to each
#   replica's region under that region's key. Neither state nor plan files ever hold it. The
#   provider writes it only when db_password_version changes (creation, rotation), but wants it in
#   every plan: the operator reads it back from the secret for the others (docs/regions.md).
# * "replica": a read replica of another region's primary (db_replica_of), encrypted under this
#   region's key; its coordinators read the replicated secret in this region;
# * "promoted": that replica after a region loss, promoted to a standalone instance
#   (db_replica_of.promoted; docs/regions.md). It keeps its endpoint and the secret
#   (promoted too), so its coordinators need no new configuration, and takes backups again.
#
# Without either it is "standalone", exactly as before.

module "account" {
  source = "../account"
}

locals {
  db_name     = "cohort"
  db_port     = 5432
  db_username = "cohort"
  # The coordinator's own role (least privilege: coordinator/src/store/roles.rs), logging in
  # with IAM authentication tokens; the master user above only migrates and grants.
  db_app_role = "cohort_app"

  db_mode = (
    var.db_replica_of != null ? (var.db_replica_of.promoted ? "promoted" : "replica") :
    var.db_secret_replicas != null ? "replicated" : "standalone"
  )
  replica  = local.db_mode == "replica"
  own_copy = local.db_mode == "replicated"
}

module "database_key" {
  source = "../kms_key"

  name                = "${var.name}-database"
  description         = "${var.name}: database storage, Performance Insights and master secret"
  account_root_arn    = module.account.account_root
  admin_principal_arn = var.admin_principal_arn
  tags                = var.tags
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-database"
  description = "${var.name} coordinator database"
  subnet_ids  = var.data_subnet_ids
  tags        = var.tags
}

resource "aws_db_parameter_group" "this" {
  name        = "${var.name}-postgres${var.db_engine_version}"
  family      = "postgres${var.db_engine_version}"
  description = "${var.name} coordinator database"

  # TLS only: the server refuses plaintext connections. The coordinators connect with
  # --store-tls require and check the certificate against the RDS CA bundle (--store-ca), so
  # nobody on the path reads approvals and payloads or changes the stored state.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  # Statements that change the schema, and every statement slower than a second.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = var.tags
}

module "rds_monitoring_role" {
  source = "../service_role"

  name             = "${var.name}-rds-monitoring"
  service          = "monitoring.rds.amazonaws.com"
  managed_policies = { enhanced_monitoring = "service-role/AmazonRDSEnhancedMonitoringRole" }
  tags             = var.tags
}

# The replicated primary's master credentials ({username, password}, as RDS writes its own
# secrets, so files/db-env.sh.tftpl reads either), with a replica in each replica's region.
resource "aws_secretsmanager_secret" "db" {
  # checkov:skip=CKV2_AWS_57: rotated by Terraform, not a Lambda: a new db_master_password with a bumped db_password_version rewrites the instance's password and this secret in one apply (docs/regions.md); RDS cannot rotate it (it manages no password of an instance with read replicas), and a rotation function would need a path into the database subnets.
  count = local.own_copy ? 1 : 0

  name                    = "${var.name}/database/master"
  description             = "${var.name}: master credentials of the coordinators' database (replicated to the read replicas' regions)"
  kms_key_id              = module.database_key.arn
  recovery_window_in_days = 30

  dynamic "replica" {
    for_each = var.db_secret_replicas
    content {
      region     = replica.key
      kms_key_id = replica.value
    }
  }

  tags = var.tags
}

resource "aws_secretsmanager_secret_version" "db" {
  count = local.own_copy ? 1 : 0

  secret_id                = aws_secretsmanager_secret.db[0].id
  secret_string_wo         = jsonencode({ username = local.db_username, password = var.db_master_password })
  secret_string_wo_version = var.db_password_version
}

resource "aws_db_instance" "this" {
  identifier     = "${var.name}-coordinator"
  engine         = var.db_replica_of != null ? null : "postgres"
  engine_version = var.db_replica_of != null ? null : var.db_engine_version
  instance_class = var.db_instance_class

  # A replica copies the primary's database, user and password, and a promoted one keeps them.
  # Removing a replica's source promotes it; a promoted one has none.
  replicate_source_db = local.replica ? var.db_replica_of.source_db_arn : null
  db_name             = var.db_replica_of != null ? null : local.db_name
  username            = var.db_replica_of != null ? null : local.db_username
  port                = local.db_port

  manage_master_user_password   = local.db_mode == "standalone" ? true : null
  master_user_secret_kms_key_id = local.db_mode == "standalone" ? module.database_key.arn : null
  password_wo                   = local.own_copy ? var.db_master_password : null
  password_wo_version           = local.own_copy ? var.db_password_version : null

  allocated_storage     = var.db_replica_of != null ? null : var.db_allocated_storage_gb
  max_allocated_storage = var.db_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = module.database_key.arn

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [var.security_group_ids.database]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true
  deletion_protection                 = true
  # A read replica takes no automated backups of its own (its primary's are the backups); the
  # promotion sets them (docs/regions.md). Nor does RDS snapshot a replica it deletes.
  backup_retention_period     = local.replica ? null : var.db_backup_retention_days
  backup_window               = local.replica ? null : "03:00-04:00"
  maintenance_window          = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot       = true
  skip_final_snapshot         = local.replica
  final_snapshot_identifier   = local.replica ? null : "${var.name}-coordinator-final"
  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.database_key.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = module.rds_monitoring_role.arn
  enabled_cloudwatch_logs_exports       = keys(aws_cloudwatch_log_group.database)

  tags = merge(var.tags, { Name = "${var.name}-coordinator" })

  lifecycle {
    precondition {
      condition     = local.replica ? startswith(var.db_replica_of.source_db_arn, "arn:") : true
      error_message = "db_replica_of.source_db_arn must be the primary instance's ARN (a cross-region replica names its source by ARN)."
    }
  }

  # The log groups exist, encrypted and with a retention, before RDS would make its own
  # (unencrypted, kept forever).
  depends_on = [module.rds_monitoring_role, aws_cloudwatch_log_group.database]
}

# The database's exported logs (enabled_cloudwatch_logs_exports), made here so that they are
# encrypted under the logs key and expire: RDS otherwise creates them on first export,
# unencrypted and kept forever.
resource "aws_cloudwatch_log_group" "database" {
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${var.name}-coordinator/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}
