# Durable storage shared by the cluster:
#
# * the sealed-blob bucket: each parent proxy's --blob-dir is mirrored to s3://BUCKET/node-I/
#   (each node's role reaches only its own prefix). The blobs are already sealed by the enclave
#   under the node's attestation-gated KMS key; the bucket adds SSE-KMS under a separate storage
#   key (S3 cannot use the node keys: their policy denies every call without an attestation
#   document), versioning, Object Lock on every blob version (blob_lock_days: not even the
#   account's administrators can destroy a node's shares, in COMPLIANCE mode), and a TLS-only
#   policy;
# * the access-log bucket: S3 server access logs of the blob bucket and the load balancer's
#   access logs (both services write only to SSE-S3 buckets).

module "account" {
  source = "../account"
}

locals {
  bucket_prefix = "${var.name}-${module.account.account_id}-${module.account.region}"
}

# --- Storage key ------------------------------------------------------------------------------

# Usable by principals the account's IAM policies allow (each node role: through S3 only, on
# its own prefix's objects); administered by admin_principal_arn. The account root's kms:* is
# what lets IAM policies grant that use; what it opens is only the bucket's layer of encryption
# (each blob is sealed under its node's attestation-gated key inside). Whatever IAM allows, the
# key is used only through S3 in this region (DenyUseOutsideS3) and never through a grant
# (DenyGrants: S3 needs none); every policy change and grant attempt is alarmed (monitoring).
module "storage_key" {
  source = "../kms_key"

  name                = "${var.name}-blob-storage"
  description         = "${var.name}: SSE-KMS of the sealed-blob bucket"
  account_root_arn    = module.account.account_root
  admin_principal_arn = var.admin_principal_arn
  statements = [
    {
      Sid       = "DenyUseOutsideS3"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
      Resource  = "*"
      Condition = { StringNotEquals = { "kms:ViaService" = "s3.${module.account.region}.amazonaws.com" } }
    },
    {
      Sid       = "DenyGrants"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = "kms:CreateGrant"
      Resource  = "*"
    },
  ]
  tags = var.tags
}

# --- Sealed-blob bucket -----------------------------------------------------------------------

resource "aws_s3_bucket" "blobs" {
  # checkov:skip=CKV_AWS_144: replication is not made here: a single-region cluster has no other region to replicate to, and a multi-region one replicates this bucket to the next region with modules/blob_replication (examples/multi-region, docs/regions.md), a separate module that checkov does not connect to this bucket.
  # checkov:skip=CKV2_AWS_62: no event notifications: nothing consumes blob writes; the nodes' sync units are the only writers and readers.
  bucket        = "${local.bucket_prefix}-sealed-blobs"
  force_destroy = false
  tags          = merge(var.tags, { Name = "${var.name}-sealed-blobs" })
}

# Every blob version (each write of a node's sealed share, node key or genesis) is retained
# for blob_lock_days from its write: neither a parent (which cannot delete anyway), nor the key
# administrator, nor the account root in COMPLIANCE mode can delete it before. That window is
# what it buys; a blob written once (a node key, a share never refreshed) is unlocked after it,
# so refresh keys within it (cohort key refresh --every) and deny s3:DeleteObjectVersion and KMS
# key deletion with an organisation SCP (operator guide). Old versions are old shares: what they
# could do is property 5's rollback, which the enclaves detect (receipts and key generations,
# docs/threat-model.md); locking them adds no power, versioning already kept them.
#
# Object Lock is turned on here, not on the bucket resource (whose object_lock_enabled would
# replace a bucket made without it): S3 enables it on an existing versioned bucket. Versions
# written before it are not locked retroactively (an S3 Batch Operations retention job does
# that). Writes need a checksum under default retention: the sync unit sends one.
resource "aws_s3_bucket_object_lock_configuration" "blobs" {
  bucket              = aws_s3_bucket.blobs.id
  object_lock_enabled = "Enabled"
  rule {
    default_retention {
      mode = var.blob_lock_mode
      days = var.blob_lock_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.storage_key.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "blobs" {
  bucket        = aws_s3_bucket.blobs.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3/sealed-blobs/"
}

# --- Access-log bucket ------------------------------------------------------------------------

resource "aws_s3_bucket" "logs" {
  # checkov:skip=CKV_AWS_145: SSE-S3, not SSE-KMS, on purpose: S3 server access logging and load balancer access logs can only be delivered to SSE-S3 buckets.
  # checkov:skip=CKV_AWS_144: access logs are not replicated across regions; they are evidence for this region's resources only.
  # checkov:skip=CKV2_AWS_62: no event notifications: nothing consumes log deliveries as events.
  bucket        = "${local.bucket_prefix}-access-logs"
  force_destroy = false
  tags          = merge(var.tags, { Name = "${var.name}-access-logs" })
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# --- Both buckets ------------------------------------------------------------------------------

# Versioned, never public, owner-enforced (no ACLs), TLS-only, with a lifecycle each. Their
# encryption differs (SSE-KMS for the blobs, SSE-S3 for the logs), so it stays with each bucket.
locals {
  buckets = { blobs = aws_s3_bucket.blobs, logs = aws_s3_bucket.logs, trail = aws_s3_bucket.trail }

  lifecycle_rules = {
    # A blob overwritten by a reseal (or by a compromised parent) stays recoverable
    # blob_noncurrent_days.
    blobs = { rule = "noncurrent-versions", expiration_days = null, noncurrent_days = var.blob_noncurrent_days }
    logs  = { rule = "expire-logs", expiration_days = var.access_log_days, noncurrent_days = 30 }
    trail = { rule = "expire-trail", expiration_days = var.trail_days, noncurrent_days = 30 }
  }

  # Besides DenyInsecureTransport: the log bucket accepts the deliveries. The load balancer
  # writes under lb/, S3 server access logging under s3/.
  policy_statements = {
    blobs = []
    trail = [
      {
        Sid       = "CloudTrailAclCheck"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:GetBucketAcl"
        Resource  = aws_s3_bucket.trail.arn
        Condition = { StringEquals = { "aws:SourceArn" = local.trail_arn } }
      },
      {
        Sid       = "CloudTrailWrite"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.trail.arn}/AWSLogs/${module.account.account_id}/*"
        Condition = { StringEquals = { "aws:SourceArn" = local.trail_arn, "s3:x-amz-acl" = "bucket-owner-full-control" } }
      },
    ]
    logs = concat([
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = module.account.account_id }
          ArnLike      = { "aws:SourceArn" = [aws_s3_bucket.blobs.arn, aws_s3_bucket.trail.arn] }
        }
      },
      ],
      # Regions opened before August 2022 deliver load balancer logs from the regional Elastic
      # Load Balancing account (aws_elb_service_account); later regions have none and deliver
      # from the log delivery service only (the statement below).
      local.legacy_elb_region ? [{
        Sid       = "LoadBalancerAccessLogsLegacy"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.this[0].arn }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/lb/AWSLogs/${module.account.account_id}/*"
      }] : [],
      [
        {
          Sid       = "LoadBalancerAccessLogs"
          Effect    = "Allow"
          Principal = { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
          Action    = "s3:PutObject"
          Resource  = "${aws_s3_bucket.logs.arn}/lb/AWSLogs/${module.account.account_id}/*"
        },
    ])
  }

  # The regions with a regional Elastic Load Balancing account for access logs (AWS's list in
  # "Enable access logs for your Application Load Balancer"): the regions opened before August
  # 2022. Anywhere else the data source below has no account and fails.
  legacy_elb_regions = [
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1",
    "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
    "ap-southeast-2", "ap-southeast-3", "ca-central-1", "eu-central-1", "eu-west-1",
    "eu-west-2", "eu-west-3", "eu-south-1", "eu-north-1", "me-south-1", "sa-east-1",
    "us-gov-west-1", "us-gov-east-1", "cn-north-1", "cn-northwest-1",
  ]
  legacy_elb_region = contains(local.legacy_elb_regions, module.account.region)
}

data "aws_elb_service_account" "this" {
  count = local.legacy_elb_region ? 1 : 0
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    id     = local.lifecycle_rules[each.key].rule
    status = "Enabled"
    filter {}

    dynamic "expiration" {
      for_each = local.lifecycle_rules[each.key].expiration_days == null ? [] : [local.lifecycle_rules[each.key].expiration_days]
      content {
        days = expiration.value
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = local.lifecycle_rules[each.key].noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "s3:*"
        Resource  = [each.value.arn, "${each.value.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }],
      local.policy_statements[each.key],
    )
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}
