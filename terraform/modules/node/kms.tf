# The node's KMS key: the enclave seals its shares under it, and only an enclave whose
# attestation document carries an allowed image's PCRs can use it. The statements are those of
# `cohort kms policy` (cli/src/kms.rs, key_policy), one EnclaveUse statement per allowed image so
# that PCRs of different images cannot be mixed:
#
# * KeyAdministration: the admin principal manages the key but can neither use it nor grant
#   its use (every action named, kms:CreateGrant not among them; ../kms_key);
# * EnclaveUse / EnclaveUseImageN: the parent role may call GenerateDataKey and Decrypt only with
#   a Recipient attestation document whose ImageSha384 (= PCR0), PCR0, PCR1, PCR2 (and PCR8 when
#   the image is signed) match, and, with parent_pcr3, whose PCR3 is the parent role's (the
#   enclave runs on an instance with this node's role; `cohort kms policy --pin-pcr3`), compared
#   with StringEqualsIgnoreCase, and only with an encryption context the enclave sends: no key
#   but Cohort's four (ForAllValues:StringEquals on kms:EncryptionContextKeys), a known blob kind
#   (StringEquals on kms:EncryptionContext:cohort:blob, which also requires the key) and a key id
#   (Null false on kms:EncryptionContext:cohort:id). ForAllValues alone would pass a call with no
#   context at all. The node key and cluster id are not known when this is applied (the enclave
#   makes its node key at enrollment, the cluster id comes from genesis): their keys only;
# * DenyWithoutAttestation: Decrypt and GenerateDataKey* without an attestation document are
#   denied to everyone, whatever else allows them;
# * DenyOtherImages: so are Decrypt and GenerateDataKey* with a document whose ImageSha384 is
#   not one of the allowed images' PCR0 (StringNotEqualsIgnoreCase, which also matches a call
#   without a document): a grant, or an allow statement added later, cannot let another image
#   (an attacker's, or a debug-mode enclave's zeros) open the node's blobs;
# * DenyReEncrypt: ReEncrypt* (which takes no Recipient) is denied to everyone;
# * DenyGrants: CreateGrant is denied to everyone (nothing in Cohort uses grants on node keys).
#
# The administrator can still change the policy (kms:PutKeyPolicy: an image rotation needs
# it); every change is alarmed (../monitoring, kms_key_changes) and is the documented
# break-glass path (docs/operator-guide.md, "KMS key administration and break-glass").
#
# There is deliberately no statement for the account root: IAM policies cannot widen access to
# this key. The key, its alias and the KeyAdministration statement are those of ../kms_key, as
# for the cluster's other keys. With kms_multi_region the key is a multi-Region primary key whose
# replica (made by the caller in another region, with this same policy: output kms_key_policy)
# shares its key material; KeyAdministration then also allows kms:ReplicateKey.

module "measurements" {
  source = "../measurements"
  files  = var.measurements_files
}

locals {
  images = module.measurements.images

  # The enclave's encryption context (protocol::parent::kms_http::context in the Rust tree;
  # tests/cli-policy-node-0.json keeps the two in step).
  context_keys = ["cohort:blob", "cohort:cluster", "cohort:id", "cohort:node"]
  blob_kinds   = ["aux-info", "ecdsa-share", "eddsa-share", "genesis", "node-key"]
}

module "key" {
  source = "../kms_key"

  name                    = "${var.name}-node-${var.node_index}"
  description             = "${var.name} node ${var.node_index}: enclave sealing key (attestation-gated)"
  policy_id               = "cohort-node-${var.node_index}"
  admin_principal_arn     = var.admin_principal_arn
  deletion_window_in_days = 30
  multi_region            = var.kms_multi_region
  statements = concat(
    [
      for n, image in local.images : {
        Sid       = length(local.images) == 1 ? "EnclaveUse" : "EnclaveUseImage${n}"
        Effect    = "Allow"
        Principal = { AWS = module.role.arn }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          StringEqualsIgnoreCase = merge(
            { for pcr, value in image : "kms:RecipientAttestation:${pcr}" => value },
            { "kms:RecipientAttestation:ImageSha384" = image.PCR0 },
            var.parent_pcr3 == null ? {} : { "kms:RecipientAttestation:PCR3" = var.parent_pcr3 },
          )
          "ForAllValues:StringEquals" = { "kms:EncryptionContextKeys" = local.context_keys }
          StringEquals                = { "kms:EncryptionContext:cohort:blob" = local.blob_kinds }
          Null                        = { "kms:EncryptionContext:cohort:id" = "false" }
        }
      }
    ],
    [
      {
        Sid       = "DenyWithoutAttestation"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { Null = { "kms:RecipientAttestation:ImageSha384" = "true" } }
      },
      {
        Sid       = "DenyOtherImages"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringNotEqualsIgnoreCase = {
            "kms:RecipientAttestation:ImageSha384" = [for image in local.images : image.PCR0]
          }
        }
      },
      {
        Sid       = "DenyReEncrypt"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "kms:ReEncrypt*"
        Resource  = "*"
      },
      {
        Sid       = "DenyGrants"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "kms:CreateGrant"
        Resource  = "*"
      },
    ],
    # A multi-Region key's administrator may replicate it (../kms_key) — into the planned
    # regions only: a replica is made with a policy of the caller's choosing.
    !var.kms_multi_region ? [] : [merge(
      {
        Sid       = "DenyUnplannedReplicas"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "kms:ReplicateKey"
        Resource  = "*"
      },
      length(var.kms_replica_regions) == 0 ? {} : {
        Condition = { StringNotEquals = { "kms:ReplicaRegion" = var.kms_replica_regions } }
      },
    )],
  )
  tags = var.tags
}
