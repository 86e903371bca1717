# --- CloudTrail (issue 23) --------------------------------------------------------------------
#
# The region's trail: every management event of the region (each KMS call on the node keys —
# PutKeyPolicy, CreateGrant, DisableKey, ScheduleKeyDeletion, and Decrypt/GenerateDataKey with
# the PCRs of the Recipient document KMS saw — and every EC2 and SSM change; IAM and global STS
# events are logged in us-east-1 and reach only a trail there or a multi-Region one, which the
# account's owner keeps beside this) and the object-level events of
# the sealed-blob bucket (who read, wrote or deleted which node's blob). Delivered, with log-file
# validation (a signed digest chain), to its own bucket under its own key, with Object Lock, and
# to a CloudWatch Logs group; EventBridge receives the management events only because a trail
# records them, so the monitoring module's KMS rules depend on it (docs/operator-guide.md,
# "What is watched").

locals {
  trail_name = "${var.name}-trail"
  # Known before the trail exists: its key's and bucket's policies name it.
  trail_arn       = "arn:${module.account.partition}:cloudtrail:${module.account.region}:${module.account.account_id}:trail/${local.trail_name}"
  trail_log_group = "/cohort/${var.name}/cloudtrail"
}

module "trail_key" {
  source = "../kms_key"

  name                = "${var.name}-trail"
  description         = "${var.name}: CloudTrail log files and their CloudWatch Logs copy"
  account_root_arn    = module.account.account_root
  admin_principal_arn = var.admin_principal_arn
  statements = [
    {
      Sid       = "CloudTrailEncrypt"
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "kms:GenerateDataKey*"
      Resource  = "*"
      Condition = {
        StringEquals = { "aws:SourceArn" = local.trail_arn }
        StringLike   = { "kms:EncryptionContext:aws:cloudtrail:arn" = local.trail_arn }
      }
    },
    {
      Sid       = "CloudTrailDescribe"
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "kms:DescribeKey"
      Resource  = "*"
      Condition = { StringEquals = { "aws:SourceArn" = local.trail_arn } }
    },
    {
      Sid       = "CloudWatchLogs"
      Effect    = "Allow"
      Principal = { Service = "logs.${module.account.region}.amazonaws.com" }
      Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      Resource  = "*"
      Condition = {
        ArnEquals = { "kms:EncryptionContext:aws:logs:arn" = "arn:${module.account.partition}:logs:${module.account.region}:${module.account.account_id}:log-group:${local.trail_log_group}" }
      }
    },
  ]
  tags = var.tags
}

resource "aws_s3_bucket" "trail" {
  # checkov:skip=CKV_AWS_144: the trail's log files are evidence for this region's resources; each region of a multi-region cluster has its own trail and bucket.
  # checkov:skip=CKV2_AWS_62: no event notifications: the monitoring module's EventBridge rules act on the events themselves.
  bucket              = "${local.bucket_prefix}-cloudtrail"
  force_destroy       = false
  object_lock_enabled = true
  tags                = merge(var.tags, { Name = "${var.name}-cloudtrail" })
}

resource "aws_s3_bucket_server_side_encryption_configuration" "trail" {
  bucket = aws_s3_bucket.trail.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.trail_key.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "trail" {
  bucket        = aws_s3_bucket.trail.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/cloudtrail/"
}

# Log files cannot be deleted or overwritten for trail_lock_days, not even by the account's
# administrators in COMPLIANCE mode (GOVERNANCE: only with s3:BypassGovernanceRetention).
resource "aws_s3_bucket_object_lock_configuration" "trail" {
  bucket = aws_s3_bucket.trail.id
  rule {
    default_retention {
      mode = var.trail_lock_mode
      days = var.trail_lock_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_cloudwatch_log_group" "trail" {
  name              = local.trail_log_group
  retention_in_days = var.trail_log_days
  kms_key_id        = module.trail_key.arn
  tags              = var.tags
}

module "trail_role" {
  source = "../service_role"

  name        = "${var.name}-cloudtrail-logs"
  description = "${var.name}: CloudTrail delivers the trail to CloudWatch Logs"
  service     = "cloudtrail.amazonaws.com"
  assume_role_condition = {
    StringEquals = { "aws:SourceArn" = local.trail_arn }
  }
  policy_name = "deliver-trail"
  statements = [{
    Sid      = "DeliverTrail"
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    Resource = "${aws_cloudwatch_log_group.trail.arn}:log-stream:*"
  }]
  tags = var.tags
}

resource "aws_cloudtrail" "this" {
  # checkov:skip=CKV_AWS_67: a regional trail on purpose: every region of a cluster has its own (modules/storage), and its KMS keys, buckets and instances live only in the regions it runs in; an account-wide or organisation trail is the account owner's, beside this one.
  # checkov:skip=CKV_AWS_252: no SNS notice per log file: what must page is matched by EventBridge rules on the events (modules/monitoring), not file deliveries.
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.trail.id
  kms_key_id                    = module.trail_key.arn
  enable_log_file_validation    = true
  include_global_service_events = true
  is_multi_region_trail         = false
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = module.trail_role.arn

  advanced_event_selector {
    name = "Management events"
    field_selector {
      field  = "eventCategory"
      equals = ["Management"]
    }
  }

  advanced_event_selector {
    name = "Sealed-blob objects"
    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }
    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }
    field_selector {
      field       = "resources.ARN"
      starts_with = ["${aws_s3_bucket.blobs.arn}/"]
    }
  }

  tags       = var.tags
  depends_on = [aws_s3_bucket_policy.this]
}
