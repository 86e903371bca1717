# The parent instance's role. Its KMS rights on the node key come from the key policy alone
# (kms.tf); here: its own blob prefix, the two release artifacts, its log group and metrics,
# and Systems Manager (Session Manager instead of SSH: the routine way in is the node's proxy
# tunnel below; a shell session is logged and pages).

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
    {
      # Session Manager's encryption of session data (modules/network): the agent decrypts.
      Sid      = "DecryptSessionData"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = var.session_kms_key_arn
    },
  ]
  host = {
    log_group_arns       = compact([aws_cloudwatch_log_group.node.arn, var.session_log_group_arn])
    metrics_namespace    = var.metrics_namespace
    artifact_kms_key_arn = var.artifact_kms_key_arn
  }
  managed_policies = { ssm = "AmazonSSMManagedInstanceCore" }
  tags             = var.tags
}

# The routine Session Manager use of a parent: a port forward to its proxy's port and nothing
# else (operator guide, step 3: fetching an attestation document to verify yourself). Operators
# are given StartSession with this document only (output proxy_tunnel_document_arn); any other
# session on a parent (a shell: SSM-SessionManagerRunShell, or another document) pages
# (modules/monitoring, NAME-host-access) and a shell is logged (modules/network).
resource "aws_ssm_document" "proxy_tunnel" {
  name            = "${var.name}-node-${var.node_index}-proxy-tunnel"
  document_type   = "Session"
  document_format = "JSON"
  content = jsonencode({
    schemaVersion = "1.0"
    description   = "Port forward to ${var.name} node ${var.node_index}'s parent proxy (port ${var.proxy_port}) only"
    sessionType   = "Port"
    parameters = {
      localPortNumber = {
        type           = "String"
        description    = "Port on the operator's machine"
        allowedPattern = "^([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
        default        = "0"
      }
    }
    properties = {
      portNumber      = tostring(var.proxy_port)
      type            = "LocalPortForwarding"
      localPortNumber = "{{ localPortNumber }}"
    }
  })
  tags = var.tags
}
