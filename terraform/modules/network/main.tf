# The VPC: per availability zone a public subnet (NAT gateway, client-API load balancer), an
# application subnet (parent instances, coordinators, interface endpoints) and a database subnet.
# Parents reach KMS, STS, S3, CloudWatch and SSM through VPC endpoints, never the internet.

module "account" {
  source = "../account"
}

locals {
  region = module.account.region
  # Subnet numbers inside the VPC range (/24s at a /16): tier offset + AZ index.
  tiers    = { public = 0, app = 16, data = 32 }
  az_index = { for i, az in var.azs : az => i }
  newbits  = 24 - tonumber(split("/", var.vpc_cidr)[1])

  log_group_arn_prefix = "arn:${module.account.partition}:logs:${local.region}:${module.account.account_id}:log-group:"
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })
}

# The default security group allows nothing; every resource gets its own group below.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  for_each = local.az_index

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = cidrsubnet(var.vpc_cidr, local.newbits, local.tiers.public + each.value)
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-public-${each.key}", Tier = "public" })
}

resource "aws_subnet" "app" {
  for_each = local.az_index

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, local.newbits, local.tiers.app + each.value)

  tags = merge(var.tags, { Name = "${var.name}-app-${each.key}", Tier = "app" })
}

resource "aws_subnet" "data" {
  for_each = local.az_index

  vpc_id            = aws_vpc.this.id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, local.newbits, local.tiers.data + each.value)

  tags = merge(var.tags, { Name = "${var.name}-data-${each.key}", Tier = "data" })
}

# One NAT gateway per AZ, so losing an AZ does not cut the others' egress.
resource "aws_eip" "nat" {
  for_each = local.az_index

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat-${each.key}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  for_each = local.az_index

  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.public[each.key].id
  tags          = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each = aws_subnet.public

  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "app" {
  for_each = local.az_index

  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-app-${each.key}" })
}

resource "aws_route" "app_nat" {
  for_each = local.az_index

  route_table_id         = aws_route_table.app[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[each.key].id
}

resource "aws_route_table_association" "app" {
  for_each = aws_subnet.app

  subnet_id      = each.value.id
  route_table_id = aws_route_table.app[each.key].id
}

# Database subnets have only the VPC-local route.
resource "aws_route_table" "data" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-data" })
}

resource "aws_route_table_association" "data" {
  for_each = aws_subnet.data

  subnet_id      = each.value.id
  route_table_id = aws_route_table.data.id
}

# --- VPC endpoints ---------------------------------------------------------------------------

# The S3 gateway endpoint reaches only the buckets the instances use (issue 23: without a policy
# it is a path out for anything on an instance, to any bucket of any account): the cluster's own
# (s3_bucket_names: the release artifacts, the sealed blobs) and, read-only, Amazon Linux's
# package repositories and SSM's buckets in this region, which cloud-init and the SSM agent read.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for rt in aws_route_table.app : rt.id]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ClusterBuckets"
        Effect    = "Allow"
        Principal = { AWS = "*" }
        Action    = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"]
        Resource  = flatten([for b in var.s3_bucket_names : ["arn:${module.account.partition}:s3:::${b}", "arn:${module.account.partition}:s3:::${b}/*"]])
      },
      {
        Sid       = "AmazonLinuxAndSsm"
        Effect    = "Allow"
        Principal = { AWS = "*" }
        Action    = "s3:GetObject"
        Resource = [
          "arn:${module.account.partition}:s3:::al2023-repos-${local.region}-*/*",
          "arn:${module.account.partition}:s3:::amazonlinux-2-repos-${local.region}/*",
          "arn:${module.account.partition}:s3:::aws-ssm-${local.region}/*",
          "arn:${module.account.partition}:s3:::amazon-ssm-${local.region}/*",
          "arn:${module.account.partition}:s3:::amazon-ssm-packages-${local.region}/*",
          "arn:${module.account.partition}:s3:::${local.region}-birdwatcher-prod/*",
          "arn:${module.account.partition}:s3:::aws-ssm-distributor-file-${local.region}/*",
          "arn:${module.account.partition}:s3:::aws-ssm-document-attachments-${local.region}/*",
          "arn:${module.account.partition}:s3:::patch-baseline-snapshot-${local.region}/*",
          "arn:${module.account.partition}:s3:::amazoncloudwatch-agent-${local.region}/*",
        ]
      },
    ]
  })

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoints)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for s in aws_subnet.app : s.id]
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

# --- Logs key and VPC flow logs --------------------------------------------------------------

# One customer-managed key for the cluster's CloudWatch log groups (flow logs, node and
# coordinator logs, the database's exported logs).
module "logs_key" {
  source = "../kms_key"

  name             = "${var.name}-logs"
  description      = "${var.name}: CloudWatch Logs encryption"
  account_root_arn = module.account.account_root
  statements = [{
    Sid       = "CloudWatchLogs"
    Effect    = "Allow"
    Principal = { Service = "logs.${local.region}.amazonaws.com" }
    Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    Resource  = "*"
    Condition = {
      ArnLike = {
        "kms:EncryptionContext:aws:logs:arn" = [
          "${local.log_group_arn_prefix}/${var.name}/*",
          "${local.log_group_arn_prefix}aws-waf-logs-${var.name}*",
          "${local.log_group_arn_prefix}/aws/rds/instance/${var.name}-coordinator/*",
        ]
      }
    }
  }]
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.arn
  tags              = var.tags
}

module "flow_logs_role" {
  source = "../service_role"

  name    = "${var.name}-vpc-flow-logs"
  service = "vpc-flow-logs.amazonaws.com"
  assume_role_condition = {
    StringEquals = { "aws:SourceAccount" = module.account.account_id }
  }
  policy_name = "write-flow-logs"
  statements = [{
    Effect   = "Allow"
    Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    Resource = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }]
  tags = var.tags
}

resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn         = module.flow_logs_role.arn

  tags = merge(var.tags, { Name = var.name })
}

# --- Session Manager: the region's preferences and the session log ----------------------------

# Instances have no SSH; Session Manager is the way in. Its preferences are one document per
# account and region (SSM-SessionManagerRunShell): every shell session started here, on a
# parent or a coordinator, has its input and output streamed to /NAME/sessions, encrypted, and
# ends after 20 idle minutes or an hour. A shell on a parent pages (modules/monitoring,
# NAME-host-access); the routine way in is a node's proxy tunnel (modules/node), a port
# forward to the proxy's port only. session_preferences = false where the account already
# manages this document (it cannot have two).
resource "aws_cloudwatch_log_group" "sessions" {
  name              = "/${var.name}/sessions"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.arn
  tags              = var.tags
}

# Session data is encrypted under this key beyond TLS (Session Manager's KMS encryption): an
# operator starting a session needs kms:GenerateDataKey on it (their own IAM policy), each
# instance kms:Decrypt (its role: session_kms_key_arn).
module "sessions_key" {
  source = "../kms_key"

  name             = "${var.name}-sessions"
  description      = "${var.name}: Session Manager session encryption"
  account_root_arn = module.account.account_root
  tags             = var.tags
}

resource "aws_ssm_document" "session_preferences" {
  count = var.session_preferences ? 1 : 0

  name            = "SSM-SessionManagerRunShell"
  document_type   = "Session"
  document_format = "JSON"
  content = jsonencode({
    schemaVersion = "1.0"
    description   = "Session Manager preferences (${var.name}): every session logged to CloudWatch Logs, encrypted"
    sessionType   = "Standard_Stream"
    inputs = {
      s3BucketName                = ""
      s3KeyPrefix                 = ""
      s3EncryptionEnabled         = true
      cloudWatchLogGroupName      = aws_cloudwatch_log_group.sessions.name
      cloudWatchEncryptionEnabled = true
      cloudWatchStreamingEnabled  = true
      kmsKeyId                    = module.sessions_key.arn
      runAsEnabled                = false
      runAsDefaultUser            = ""
      idleSessionTimeout          = "20"
      maxSessionDuration          = "60"
      shellProfile                = { windows = "", linux = "" }
    }
  })
  tags = var.tags
}
