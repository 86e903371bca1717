# One customer-managed KMS key with rotation on, its alias (alias/NAME) and its key policy. The
# policy is, in this order: the account root's kms:* (when account_root_arn is set: IAM policies
# may then grant use of the key), the administration statement of admin_principal_arn (manage
# but not use the key; when set), then the caller's own statements. With multi_region the key is
# a multi-Region primary key: its replicas (aws_kms_replica_key, made by the caller in other
# regions) share its key material, and the administrator may also replicate it.

locals {
  # Every action named (cli/src/kms.rs, KEY_ADMINISTRATION): manage, alias, tag, rotate,
  # disable, schedule deletion and change the policy; never use the key and never grant its use.
  # A wildcard such as kms:Create* would take in kms:CreateGrant, and a grant to any principal
  # lets that principal use the key beside the policy (issue 23).
  administration = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]

  # kms:ReplicateKey is granted by the primary key's policy alone (not by IAM when the policy
  # has no account-root statement), so a multi-Region key's administrator needs it here to make
  # the replicas. A single-Region key keeps exactly the list above (`cohort kms policy`'s).
  administration_actions = var.multi_region ? concat(local.administration, ["kms:ReplicateKey"]) : local.administration

  policy = merge(
    { Version = "2012-10-17" },
    { for k, v in { Id = var.policy_id } : k => v if v != null },
    {
      Statement = concat(
        var.account_root_arn == null ? [] : [{
          Sid       = "EnableIamPolicies"
          Effect    = "Allow"
          Principal = { AWS = var.account_root_arn }
          Action    = "kms:*"
          Resource  = "*"
        }],
        var.admin_principal_arn == null ? [] : [{
          Sid       = "KeyAdministration"
          Effect    = "Allow"
          Principal = { AWS = var.admin_principal_arn }
          Action    = local.administration_actions
          Resource  = "*"
        }],
        var.statements,
      )
    },
  )
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  multi_region            = var.multi_region
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = jsonencode(local.policy)

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
