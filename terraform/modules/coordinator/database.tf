# PostgreSQL shared by the coordinators: Multi-AZ, encrypted under its own key, TLS required
# (rds.force_ssl), deletion protection, automated backups, IAM authentication on, Performance
# Insights and enhanced monitoring. The master password is generated and kept by RDS in Secrets
# Manager (manage_master_user_password); coordinators read it at start (files/db-env.sh.tftpl)
# and check the server's certificate against the RDS CA bundle (db_ca_bundle_key).

module "account" {
  source = "../account"
}

locals {
  db_name = "cohort"
  db_port = 5432
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

resource "aws_db_instance" "this" {
  identifier     = "${var.name}-coordinator"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name  = local.db_name
  username = "cohort"
  port     = local.db_port

  manage_master_user_password   = true
  master_user_secret_kms_key_id = module.database_key.arn

  allocated_storage     = var.db_allocated_storage_gb
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
  backup_retention_period             = var.db_backup_retention_days
  backup_window                       = "03:00-04:00"
  maintenance_window                  = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot               = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-coordinator-final"
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.database_key.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = module.rds_monitoring_role.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  tags = merge(var.tags, { Name = "${var.name}-coordinator" })

  depends_on = [module.rds_monitoring_role]
}
