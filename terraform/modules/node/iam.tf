# The parent instance's role. Its KMS rights on the node key come from the key policy alone
# (kms.tf); here: its own blob prefix, the two release artifacts, its log group and metrics,
# and Systems Manager (Session Manager instead of SSH).

module "account" {
  source = "../account"
}

locals {
  blob_prefix = "node-${var.node_index}"
  blob_bucket = "arn:${module.account.partition}:s3:::${var.blob_bucket_name}"
  artifacts   = "arn:${module.account.partition}:s3:::${var.artifact_bucket}"
}

module "role" {
  source = "../service_role"

  name             = "${var.name}-node-${var.node_index}-parent"
  description      = "Parent instance of ${var.name} node ${var.node_index}"
  instance_profile = true
  policy_name      = "cohort-parent"
  statements = [
    {
      Sid      = "ReadReleaseArtifacts"
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = ["${local.artifacts}/${var.eif_key}", "${local.artifacts}/${var.proxy_binary_key}"]
    },
    {
      Sid      = "ListOwnBlobPrefix"
      Effect   = "Allow"
      Action   = "s3:ListBucket"
      Resource = local.blob_bucket
      Condition = {
        StringLike = { "s3:prefix" = ["${local.blob_prefix}/", "${local.blob_prefix}/*"] }
      }
    },
    {
      # Add and replace only: the proxy never deletes a sealed blob, and neither does the sync.
      Sid      = "ReadWriteOwnBlobs"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject"]
      Resource = "${local.blob_bucket}/${local.blob_prefix}/*"
    },
    {
      Sid      = "BlobBucketEncryption"
      Effect   = "Allow"
      Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
      Resource = var.storage_kms_key_arn
      Condition = {
        StringEquals = { "kms:ViaService" = "s3.${module.account.region}.amazonaws.com" }
      }
    },
  ]
  host = {
    log_group_arns       = [aws_cloudwatch_log_group.node.arn]
    metrics_namespace    = var.metrics_namespace
    artifact_kms_key_arn = var.artifact_kms_key_arn
  }
  managed_policies = { ssm = "AmazonSSMManagedInstanceCore" }
  tags             = var.tags
}
