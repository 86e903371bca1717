variable "name" {
  description = "Name prefix of every resource (the cluster's name)."
  type        = string
  default     = "cohort"
}

variable "node_index" {
  description = "This node's index, from 0: the coordinators' node i (API, metrics, audit log) is their i-th --proxy, and the same number names its Auto Scaling group, KMS key, blob prefix and alarms."
  type        = number

  validation {
    condition     = var.node_index >= 0 && floor(var.node_index) == var.node_index
    error_message = "node_index is a whole number from 0 (the coordinators' numbering)."
  }
}

variable "subnet_id" {
  description = "Application subnet of this node: its fixed network interface, and so every instance the node ever runs, lives there (moving it to another AZ: README, \"Losing an availability zone\")."
  type        = string
}

variable "security_group_id" {
  description = "Security group of the parent instances (network module, security_group_ids.node)."
  type        = string
}

variable "measurements_files" {
  description = "eif-build measurements files of the enclave images this node's KMS key and proxy accept (several during an image rotation)."
  type        = list(string)
}

variable "parent_pcr3" {
  description = "PCR3 an enclave reports on an instance with this node's parent role: `cohort kms pcr3 --role-arn ARN` of the role this module names (output parent_role_arn; its ARN is known before apply: arn:PARTITION:iam::ACCOUNT:role/NAME-node-I-parent). When set, the KMS key answers only enclaves on such an instance. Terraform has no SHA-384, so it is computed outside. Null: not pinned."
  type        = string
  default     = null

  validation {
    condition     = var.parent_pcr3 == null || can(regex("^[0-9a-f]{96}$", var.parent_pcr3))
    error_message = "parent_pcr3 is 48 bytes of lowercase hex (`cohort kms pcr3`), or null."
  }

  validation {
    condition     = var.parent_pcr3 == null || var.parent_pcr3 != join("", [for i in range(96) : "0"])
    error_message = "parent_pcr3 is all zeros: that is an instance without an IAM role, not this node's parent."
  }
}

variable "kms_multi_region" {
  description = "Make the node's KMS key a multi-Region primary key, so that a replica key in another region (made by the caller with this key's policy) can open the node's sealed blobs there (docs/regions.md says what the enclave still lacks for that). Changing it replaces the key, and with it every blob sealed under it: set it before genesis."
  type        = bool
  default     = false
}

variable "kms_replica_regions" {
  description = "With kms_multi_region: the regions where the key's replicas are planned (the multi-region example: the next region of the ring). ReplicateKey into any other region is denied to everyone (DenyUnplannedReplicas): a replica takes a policy of its replicator's choosing and opens the primary's ciphertexts, so an unplanned one would be PutKeyPolicy by another name. KMS allows one replica per region, so once the planned ones exist no further replica can be made."
  type        = list(string)
  default     = []
}

variable "admin_principal_arn" {
  description = "IAM principal that administers this node's KMS key but may not use it. Terraform must run as this principal (KMS refuses a key policy that locks out its creator)."
  type        = string
}

variable "instance_type" {
  description = "Parent instance type; must support Nitro Enclaves and leave the parent at least 2 vCPUs besides the enclave's (checked against EC2's description of the type at plan time)."
  type        = string
  default     = "m6i.xlarge"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9-]+$", var.instance_type))
    error_message = "instance_type is an EC2 instance type such as m6i.xlarge."
  }
}

variable "ami_id" {
  description = "The parent AMI, pinned (production: a new OS is then a reviewed change; output ami_id shows the one in use). Null: the latest ami_ssm_parameter names, at each apply."
  type        = string
  default     = null
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the parent AMI id (Amazon Linux 2023, x86_64)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "root_volume_gb" {
  description = "Root volume size (encrypted gp3)."
  type        = number
  default     = 30
}

variable "enclave_cpu_count" {
  description = "vCPUs given to the enclave (allocator.yaml cpu_count and run-enclave --cpu-count): whole cores, so an even number on x86."
  type        = number
  default     = 2

  validation {
    condition     = var.enclave_cpu_count >= 2 && floor(var.enclave_cpu_count) == var.enclave_cpu_count
    error_message = "enclave_cpu_count is a whole number of at least 2 (one full core)."
  }
}

variable "enclave_memory_mib" {
  description = "Memory given to the enclave, MiB (allocator.yaml memory_mib and run-enclave --memory)."
  type        = number
  default     = 4096
}

variable "proxy_port" {
  description = "Port of the proxy's HTTP API (--listen 0.0.0.0:PORT): the network module's proxy_port output, which its security groups open, so the two never disagree."
  type        = number
}

variable "artifact_bucket" {
  description = "S3 bucket holding the release artifacts."
  type        = string
}

variable "eif_key" {
  description = "Object key of the enclave image (EIF) in artifact_bucket; installed as /opt/cohort/cohort.eif."
  type        = string
}

variable "proxy_binary_key" {
  description = "Object key of the cohort-parent-proxy binary (x86_64 Linux) in artifact_bucket."
  type        = string
}

variable "artifact_kms_key_arn" {
  description = "KMS key encrypting artifact_bucket's objects, when it uses SSE-KMS (null: SSE-S3)."
  type        = string
  default     = null
}

variable "blob_bucket_name" {
  description = "Sealed-blob bucket (storage module); this node uses the prefix node-INDEX/."
  type        = string
}

variable "storage_kms_key_arn" {
  description = "SSE-KMS key of the sealed-blob bucket (storage module)."
  type        = string
}

variable "session_kms_key_arn" {
  description = "The key Session Manager encrypts session data under (network module, session_kms_key_arn): the instances' SSM agent decrypts with it."
  type        = string
}

variable "session_log_group_arn" {
  description = "Session Manager's log group (network module, session_log_group_arn): the instances' SSM agent streams each session there. Null: no session logging from these instances."
  type        = string
  default     = null
}

variable "logs_kms_key_arn" {
  description = "KMS key for the node's CloudWatch log group (network module)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the node's CloudWatch log group."
  type        = number
  default     = 365
}

variable "log_metrics_namespace" {
  description = "CloudWatch namespace of the metrics counted from the node's log group (KMS failures, blob sync failures)."
  type        = string
  default     = "Cohort/Logs"
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the host metrics the CloudWatch agent publishes."
  type        = string
  default     = "Cohort/Host"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
