variable "region" {
  description = "AWS region of the cluster."
  type        = string
}

variable "name" {
  description = "The cluster's name: prefix of every resource."
  type        = string
  default     = "cohort"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name: 2-20 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "azs" {
  description = "Availability zones (at least two); nodes are spread across them round-robin."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2
    error_message = "azs must name at least two availability zones."
  }
}

variable "vpc_cidr" {
  description = "The VPC's IPv4 range."
  type        = string
  default     = "10.40.0.0/16"
}

variable "node_count" {
  description = "Signing nodes n (one enclave, parent instance and KMS key each)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 2 && var.node_count <= 10
    error_message = "node_count is between 2 and 10."
  }
}

variable "threshold" {
  description = "Signing threshold t (nodes needed to sign); the healthy-nodes alarm fires below it."
  type        = number
  default     = 2
}

variable "node_az_overrides" {
  description = "Availability zone of a node, by node index (\"1\" = \"eu-west-1c\"; nodes are numbered from 0), overriding the round-robin placement: the procedure after losing an AZ (README)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.node_az_overrides : can(regex("^(0|[1-9][0-9]*)$", k)) && try(tonumber(k) < var.node_count, false)])
    error_message = "node_az_overrides maps node indices (\"0\" to node_count - 1) to availability zones: a key for a node that does not exist would be ignored."
  }
}

variable "parent_pcr3" {
  description = "By node index (\"0\" = .., node 0 being the coordinators' first --proxy), the PCR3 of the node's parent role: `cohort kms pcr3 --role-arn arn:aws:iam::ACCOUNT:role/NAME-node-I-parent` (NAME = var.name). The node's KMS key then answers only enclaves on an instance with that role, and `cohort genesis prepare` expects it (output genesis_prepare_args). A node left out is not pinned."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.parent_pcr3 : can(regex("^(0|[1-9][0-9]*)$", k)) && can(regex("^[0-9a-f]{96}$", v))])
    error_message = "parent_pcr3 maps node indices (\"0\", \"1\", ..) to 48 bytes of lowercase hex."
  }

  validation {
    condition     = alltrue([for k, v in var.parent_pcr3 : !can(tonumber(k)) || tonumber(k) < var.node_count])
    error_message = "parent_pcr3 names a node beyond node_count: a value for a node that does not exist would be ignored."
  }
}

variable "measurements_files" {
  description = "Measurements JSON files printed by eif-build, one per enclave image the cluster accepts (two during an image rotation). They feed the KMS key policies and /etc/cohort/measurements*.json on every instance."
  type        = list(string)
}

variable "artifact_bucket" {
  description = "S3 bucket of the release artifacts (in this account and region)."
  type        = string
}

variable "artifact_kms_key_arn" {
  description = "KMS key of artifact_bucket when it uses SSE-KMS (null: SSE-S3)."
  type        = string
  default     = null
}

variable "eif_key" {
  description = "Object key of the enclave image (EIF) whose measurements are in measurements_files."
  type        = string
}

variable "proxy_binary_key" {
  description = "Object key of the cohort-parent-proxy binary."
  type        = string
}

variable "coordinator_binary_key" {
  description = "Object key of the cohort-coordinator binary."
  type        = string
}

variable "db_ca_bundle_key" {
  description = "Object key of the RDS CA bundle (AWS's global-bundle.pem), uploaded beside the binaries: the roots the coordinators check the database's certificate against."
  type        = string
}

variable "admin_api_keys" {
  description = "The bootstrap admin API credentials (at least one): the public halves `cohort credential new --credential NAME --out key.json --public key.pub.json` wrote on each admin's machine, {credential = NAME, public_key = 64 lowercase hex digits}. Every coordinator registers them as role admin at start (--admin-key); the first admin registers every other credential with `cohort credential add`. Public keys, not secrets: plain values in terraform.tfvars are fine."
  type = list(object({
    credential = string
    public_key = string
  }))

  validation {
    condition     = length(var.admin_api_keys) >= 1
    error_message = "admin_api_keys needs at least one admin credential: every API route but /healthz, /readyz and /metrics requires one."
  }

  validation {
    condition     = alltrue([for k in var.admin_api_keys : can(regex("^[a-z0-9][a-z0-9._-]{0,63}$", k.credential))])
    error_message = "admin_api_keys: a credential name has 1 to 64 characters from a-z 0-9 . _ -, starting with a letter or digit."
  }

  validation {
    condition     = alltrue([for k in var.admin_api_keys : can(regex("^[0-9a-f]{64}$", k.public_key))])
    error_message = "admin_api_keys: public_key is an Ed25519 public key as 64 lowercase hex digits (the public_key of the .pub.json `cohort credential new` wrote)."
  }

  validation {
    condition     = length(distinct(var.admin_api_keys[*].credential)) == length(var.admin_api_keys)
    error_message = "admin_api_keys: credential names must be unique."
  }

  validation {
    condition     = length(distinct(var.admin_api_keys[*].public_key)) == length(var.admin_api_keys)
    error_message = "admin_api_keys: a public key belongs to one credential (the coordinator refuses one key under two names)."
  }
}

variable "node_instance_type" {
  description = "Parent instance type (Nitro Enclaves capable)."
  type        = string
  default     = "m6i.xlarge"
}

variable "enclave_cpu_count" {
  description = "vCPUs of each enclave."
  type        = number
  default     = 2
}

variable "enclave_memory_mib" {
  description = "Memory of each enclave, MiB."
  type        = number
  default     = 4096
}

variable "session_preferences" {
  description = "Whether to manage the region's Session Manager preferences (the account-wide document SSM-SessionManagerRunShell: shell transcripts to /NAME/sessions, encrypted). false where the account already has that document (import it, or manage it elsewhere); two clusters in one account and region cannot both manage it."
  type        = bool
  default     = true
}

variable "blob_lock_mode" {
  description = "Object Lock mode of the sealed-blob bucket: COMPLIANCE (production: no one in the account removes a blob version for a year) or GOVERNANCE (a test deployment that must be torn down)."
  type        = string
  default     = "COMPLIANCE"
}

variable "node_ami_id" {
  description = "The parent instances' AMI, pinned (output ami_ids shows the ones in use). Null: the latest Amazon Linux 2023 at each apply, so that a replaced parent may boot an OS no one reviewed. Pin it in production."
  type        = string
  default     = null
}

variable "coordinator_ami_id" {
  description = "The coordinators' AMI, pinned (a change rolls them, one at a time). Null: the latest Amazon Linux 2023 at each apply."
  type        = string
  default     = null
}

variable "coordinator_instance_type" {
  description = "Coordinator instance type."
  type        = string
  default     = "m6i.large"
}

variable "coordinator_count" {
  description = "Coordinators behind the load balancer."
  type        = number
  default     = 2
}

variable "db_instance_class" {
  description = "RDS instance class of the coordinators' PostgreSQL."
  type        = string
  default     = "db.m6g.large"
}

variable "client_cidrs" {
  description = "CIDRs allowed to call the client API (443). Empty: nobody."
  type        = list(string)
  default     = []
}

variable "coordinator_egress_cidrs" {
  description = "CIDRs of chain JSON-RPC providers the coordinators may reach on 443."
  type        = list(string)
  default     = []
}

variable "load_balancer_internal" {
  description = "Make the client API load balancer internal instead of internet-facing."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate of the client API's TLS listener."
  type        = string
}

variable "admin_principal_arn" {
  description = "IAM principal that administers the KMS keys (and runs Terraform: KMS refuses a node key policy that would lock its creator out)."
  type        = string
}

variable "alarm_email" {
  description = "Address that receives the alarms (null: none; subscribe to the topic otherwise)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = { Project = "cohort" }
}
