# One IAM role that an AWS service assumes: its trust policy, an inline policy, managed policy
# attachments and, for EC2, the instance profile. With `host` set (a Cohort instance: the
# coordinators, a node's parent), the inline policy also lets the instance write its own log
# groups, let the CloudWatch agent look them up, put its metrics in its namespace and, when the
# release artifacts are encrypted under a customer key, decrypt them through S3.

module "account" {
  source = "../account"
}

locals {
  host_statements = flatten([for host in var.host == null ? [] : [var.host] : concat(
    [
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        Resource = [for arn in host.log_group_arns : "${arn}:*"]
      },
      {
        # The CloudWatch agent looks its log groups up before writing.
        Sid      = "DescribeLogGroups"
        Effect   = "Allow"
        Action   = "logs:DescribeLogGroups"
        Resource = "arn:${module.account.partition}:logs:${module.account.region}:${module.account.account_id}:log-group:*"
      },
      {
        Sid      = "PutHostMetrics"
        Effect   = "Allow"
        Action   = "cloudwatch:PutMetricData"
        Resource = "*"
        Condition = {
          StringEquals = { "cloudwatch:namespace" = host.metrics_namespace }
        }
      },
    ],
    host.artifact_kms_key_arn == null ? [] : [{
      Sid      = "ArtifactEncryption"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = host.artifact_kms_key_arn
      Condition = {
        StringEquals = { "kms:ViaService" = "s3.${module.account.region}.amazonaws.com" }
      }
    }],
  )])

  statements = concat(var.statements, local.host_statements)
}

resource "aws_iam_role" "this" {
  name        = var.name
  description = var.description
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [merge(
      {
        Effect    = "Allow"
        Principal = { Service = var.service }
        Action    = "sts:AssumeRole"
      },
      var.assume_role_condition == null ? {} : { Condition = var.assume_role_condition },
    )]
  })
  tags = var.tags
}

resource "aws_iam_instance_profile" "this" {
  count = var.instance_profile ? 1 : 0

  name = aws_iam_role.this.name
  role = aws_iam_role.this.name
  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  count = length(local.statements) > 0 ? 1 : 0

  name = var.policy_name
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.statements
  })
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = var.managed_policies

  role       = aws_iam_role.this.name
  policy_arn = "arn:${module.account.partition}:iam::aws:policy/${each.value}"
}
