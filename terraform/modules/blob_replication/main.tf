# Cross-region replication of a sealed-blob bucket (modules/storage): S3 copies every new version
# under the given node prefixes to a bucket in another region, so that losing the source region
# loses neither the blobs nor their history (docs/regions.md). The copies are encrypted under the
# destination region's storage key (a KMS key is regional); the blobs inside stay sealed by their
# enclave under the node's own KMS key, which S3 never touches.
#
# Replication Time Control (15 minutes, with its metrics) makes a lagging copy visible: a blob
# written in the last minutes before a region is lost may be missing at the destination, which
# the threshold tolerates like the loss of that node's newest share. Delete markers are not
# replicated (no Cohort process deletes a blob, and a deletion in one region must not reach the
# copy), and replicas are never replicated again, so the destination bucket may be another
# region's own blob bucket that replicates its own nodes elsewhere (examples/multi-region: a ring).
#
# A module of its own, not a setting of modules/storage: the destination is another region's
# bucket, and a region's storage that referred to the next region's would make the regions of a
# ring refer to each other in a circle.

module "account" {
  source = "../account"
}

locals {
  # The destination's region, from its key (KMS ARNs name their region, bucket ARNs do not).
  destination_region = split(":", var.destination_kms_key_arn)[3]

  # Both buckets use S3 Bucket Keys, whose encryption context is the bucket's ARN rather than
  # the object's, so the KMS conditions admit both forms.
  source_objects      = [for p in var.prefixes : "${var.source_bucket_arn}/${p}*"]
  destination_objects = [for p in var.prefixes : "${var.destination_bucket_arn}/${p}*"]
}

# The role S3 assumes to replicate: read the source bucket's versions under the prefixes, decrypt
# them with the source's storage key, write the replicas and encrypt them with the destination's
# key; nothing else.
module "role" {
  source = "../service_role"

  name        = "${var.name}-blob-replication"
  description = "${var.name}: S3 replication of the sealed blobs to ${local.destination_region}"
  service     = "s3.amazonaws.com"
  assume_role_condition = {
    StringEquals = { "aws:SourceAccount" = module.account.account_id }
    ArnLike      = { "aws:SourceArn" = var.source_bucket_arn }
  }
  policy_name = "replicate-sealed-blobs"
  statements = [
    {
      Sid      = "ReadReplicationConfiguration"
      Effect   = "Allow"
      Action   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
      Resource = var.source_bucket_arn
    },
    {
      Sid    = "ReadSourceVersions"
      Effect = "Allow"
      # Retention and legal hold: the source bucket is under Object Lock, and so is the
      # destination (each region's modules/storage), which S3 requires to replicate it.
      Action   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging", "s3:GetObjectRetention", "s3:GetObjectLegalHold"]
      Resource = local.source_objects
    },
    {
      Sid      = "WriteReplicas"
      Effect   = "Allow"
      Action   = ["s3:ReplicateObject", "s3:ReplicateTags"]
      Resource = local.destination_objects
    },
    {
      Sid      = "DecryptSource"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = var.source_kms_key_arn
      Condition = {
        StringEquals = { "kms:ViaService" = "s3.${module.account.region}.amazonaws.com" }
        StringLike   = { "kms:EncryptionContext:aws:s3:arn" = concat([var.source_bucket_arn], local.source_objects) }
      }
    },
    {
      Sid      = "EncryptReplicas"
      Effect   = "Allow"
      Action   = ["kms:Encrypt", "kms:GenerateDataKey"]
      Resource = var.destination_kms_key_arn
      Condition = {
        StringEquals = { "kms:ViaService" = "s3.${local.destination_region}.amazonaws.com" }
        StringLike   = { "kms:EncryptionContext:aws:s3:arn" = concat([var.destination_bucket_arn], local.destination_objects) }
      }
    },
  ]
  tags = var.tags
}

resource "aws_s3_bucket_replication_configuration" "this" {
  bucket = var.source_bucket_name
  role   = module.role.arn

  # One rule per node prefix: a bucket that also holds another region's replicated nodes never
  # sends those on.
  dynamic "rule" {
    for_each = { for i, p in var.prefixes : p => i }
    content {
      id       = trimsuffix(rule.key, "/")
      priority = rule.value
      status   = "Enabled"

      filter {
        prefix = rule.key
      }

      delete_marker_replication {
        status = "Disabled"
      }

      source_selection_criteria {
        sse_kms_encrypted_objects {
          status = "Enabled"
        }
      }

      destination {
        bucket        = var.destination_bucket_arn
        storage_class = "STANDARD"

        encryption_configuration {
          replica_kms_key_id = var.destination_kms_key_arn
        }

        replication_time {
          status = "Enabled"
          time {
            minutes = 15
          }
        }

        metrics {
          status = "Enabled"
          event_threshold {
            minutes = 15
          }
        }
      }
    }
  }
}
