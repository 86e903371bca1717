# The parent instance's role. Its KMS rights on the node key come from the key policy alone
# (kms.tf); here: its own blob prefix, the two release artifacts, its log group and metrics,
# and Systems Manager (Session Manager instead of SSH).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  blob_prefix = "node-${var.node_index}"
  blob_bucket = "arn:${local.partition}:s3:::${var.blob_bucket_name}"
  artifacts   = "arn:${local.partition}:s3:::${var.artifact_bucket}"
}

resource "aws_iam_role" "parent" {
  name        = "${var.name}-node-${var.node_index}-parent"
  description = "Parent instance of ${var.name} node ${var.node_index}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_instance_profile" "parent" {
  name = aws_iam_role.parent.name
  role = aws_iam_role.parent.name
  tags = var.tags
}

resource "aws_iam_role_policy" "parent" {
  name = "cohort-parent"
  role = aws_iam_role.parent.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
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
            StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" }
          }
        },
        {
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
          Resource = "${aws_cloudwatch_log_group.node.arn}:*"
        },
        {
          # The CloudWatch agent looks its log group up before writing.
          Sid      = "DescribeLogGroups"
          Effect   = "Allow"
          Action   = "logs:DescribeLogGroups"
          Resource = "arn:${local.partition}:logs:${local.region}:${data.aws_caller_identity.current.account_id}:log-group:*"
        },
        {
          Sid      = "PutHostMetrics"
          Effect   = "Allow"
          Action   = "cloudwatch:PutMetricData"
          Resource = "*"
          Condition = {
            StringEquals = { "cloudwatch:namespace" = var.metrics_namespace }
          }
        },
      ],
      var.artifact_kms_key_arn == null ? [] : [{
        Sid      = "ArtifactEncryption"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = var.artifact_kms_key_arn
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" }
        }
      }],
    )
  })
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.parent.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
