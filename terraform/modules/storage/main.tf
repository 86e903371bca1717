# Durable storage shared by the cluster:
#
# * the sealed-blob bucket: each parent proxy's --blob-dir is mirrored to s3://BUCKET/node-I/
#   (each node's role reaches only its own prefix). The blobs are already sealed by the enclave
#   under the node's attestation-gated KMS key; the bucket adds SSE-KMS under a separate storage
#   key (S3 cannot use the node keys: their policy denies every call without an attestation
#   document), versioning, and a TLS-only policy;
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
# its own prefix's objects); administered by admin_principal_arn.
module "storage_key" {
  source = "../kms_key"

  name                = "${var.name}-blob-storage"
  description         = "${var.name}: SSE-KMS of the sealed-blob bucket"
  account_root_arn    = module.account.account_root
  admin_principal_arn = var.admin_principal_arn
  tags                = var.tags
}

# --- Sealed-blob bucket -----------------------------------------------------------------------

resource "aws_s3_bucket" "blobs" {
  # checkov:skip=CKV_AWS_144: replication is not made here: a single-region cluster has no other region to replicate to, and a multi-region one replicates this bucket to the next region with modules/blob_replication (examples/multi-region, docs/regions.md), a separate module that checkov does not connect to this bucket.
  # checkov:skip=CKV2_AWS_62: no event notifications: nothing consumes blob writes; the nodes' sync units are the only writers and readers.
  bucket        = "${local.bucket_prefix}-sealed-blobs"
  force_destroy = false
  tags          = merge(var.tags, { Name = "${var.name}-sealed-blobs" })
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
  buckets = { blobs = aws_s3_bucket.blobs, logs = aws_s3_bucket.logs }

  lifecycle_rules = {
    # A blob overwritten by a reseal (or by a compromised parent) stays recoverable
    # blob_noncurrent_days.
    blobs = { rule = "noncurrent-versions", expiration_days = null, noncurrent_days = var.blob_noncurrent_days }
    logs  = { rule = "expire-logs", expiration_days = var.access_log_days, noncurrent_days = 30 }
  }

  # Besides DenyInsecureTransport: the log bucket accepts the deliveries. The load balancer
  # writes under lb/, S3 server access logging under s3/.
  policy_statements = {
    blobs = []
    logs = [
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/s3/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = module.account.account_id }
          ArnLike      = { "aws:SourceArn" = aws_s3_bucket.blobs.arn }
        }
      },
      {
        # Regions opened before August 2022 deliver load balancer logs from the regional
        # Elastic Load Balancing account; later regions from the log delivery service (there
        # aws_elb_service_account has no account: drop this statement and the data source).
        Sid       = "LoadBalancerAccessLogsLegacy"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.this.arn }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/lb/AWSLogs/${module.account.account_id}/*"
      },
      {
        Sid       = "LoadBalancerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/lb/AWSLogs/${module.account.account_id}/*"
      },
    ]
  }
}

data "aws_elb_service_account" "this" {}

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
