# The coordinators' role: their binary, the database secret, their log groups and metrics,
# and Systems Manager (Session Manager instead of SSH). No KMS key of a node, no blob.

locals {
  artifacts  = "arn:${local.partition}:s3:::${var.artifact_bucket}"
  db_secret  = aws_db_instance.this.master_user_secret[0].secret_arn
  log_groups = [aws_cloudwatch_log_group.service.arn, aws_cloudwatch_log_group.prometheus.arn]
}

resource "aws_iam_role" "coordinator" {
  name        = "${var.name}-coordinator"
  description = "${var.name} coordinators"
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

resource "aws_iam_instance_profile" "coordinator" {
  name = aws_iam_role.coordinator.name
  role = aws_iam_role.coordinator.name
  tags = var.tags
}

resource "aws_iam_role_policy" "coordinator" {
  name = "cohort-coordinator"
  role = aws_iam_role.coordinator.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "ReadReleaseArtifact"
          Effect   = "Allow"
          Action   = "s3:GetObject"
          Resource = "${local.artifacts}/${var.coordinator_binary_key}"
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
          Resource = module.database_key.arn
          Condition = {
            StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" }
          }
        },
        {
          Sid      = "WriteOwnLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
          Resource = [for arn in local.log_groups : "${arn}:*"]
        },
        {
          # The CloudWatch agent looks its log groups up before writing.
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
  role       = aws_iam_role.coordinator.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}
