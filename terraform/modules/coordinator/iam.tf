# The coordinators' role: their binary and the RDS CA bundle, the database secret, their log groups and metrics,
# and Systems Manager (Session Manager instead of SSH). No KMS key of a node, no blob.

locals {
  artifacts = "arn:${module.account.partition}:s3:::${var.artifact_bucket}"
  # RDS's own secret, this module's (replicated primary), or the replica of the primary's secret
  # in this region (read replica, and the same secret promoted with it).
  db_secret = {
    standalone = try(aws_db_instance.this.master_user_secret[0].secret_arn, null)
    replicated = try(aws_secretsmanager_secret.db[0].arn, null)
    replica    = try(var.db_replica_of.secret_arn, null)
    promoted   = try(var.db_replica_of.secret_arn, null)
  }[local.db_mode]
  # The key of that secret: the database key, or the one the primary replicated the secret under.
  db_secret_key = coalesce(try(var.db_replica_of.secret_kms_key_arn, null), module.database_key.arn)
  log_groups    = [aws_cloudwatch_log_group.this["service"].arn, aws_cloudwatch_log_group.this["prometheus"].arn]
}

module "role" {
  source = "../service_role"

  name             = "${var.name}-coordinator"
  description      = "${var.name} coordinators"
  instance_profile = true
  policy_name      = "cohort-coordinator"
  statements = [
    {
      Sid      = "ReadReleaseArtifact"
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = ["${local.artifacts}/${var.coordinator_binary_key}", "${local.artifacts}/${var.db_ca_bundle_key}"]
    },
    {
      Sid      = "ReadDatabaseSecret"
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = local.db_secret
    },
    {
      Sid      = "DecryptDatabaseSecret"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = local.db_secret_key
      Condition = {
        StringEquals = { "kms:ViaService" = "secretsmanager.${module.account.region}.amazonaws.com" }
      }
    },
    {
      # An IAM authentication token for the coordinator's own database role (files/db-env).
      Sid      = "ConnectAsTheCoordinatorRole"
      Effect   = "Allow"
      Action   = "rds-db:connect"
      Resource = "arn:${module.account.partition}:rds-db:${module.account.region}:${module.account.account_id}:dbuser:${aws_db_instance.this.resource_id}/${local.db_app_role}"
    },
    {
      # Session Manager's encryption of session data (modules/network): the agent decrypts.
      Sid      = "DecryptSessionData"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = var.session_kms_key_arn
    },
  ]
  host = {
    log_group_arns       = compact(concat(local.log_groups, [var.session_log_group_arn]))
    metrics_namespace    = var.metrics_namespace
    artifact_kms_key_arn = var.artifact_kms_key_arn
  }
  managed_policies = { ssm = "AmazonSSMManagedInstanceCore" }
  tags             = var.tags
}
