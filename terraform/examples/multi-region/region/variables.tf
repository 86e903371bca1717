variable "name" {
  description = "This region's name prefix: the cluster's name and the region's slot (\"cohort-a\"). IAM names are global, so each region's roles need their own."
  type        = string
}

variable "azs" {
  description = "Availability zones of this region (at least two); its nodes are spread over them round-robin."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "This region's VPC range; it must not overlap another region's (the VPCs are peered)."
  type        = string
}

variable "client_cidrs" {
  description = "CIDRs allowed to call this region's client API load balancer (443), if it has coordinators."
  type        = list(string)
  default     = []
}

variable "coordinator_egress_cidrs" {
  description = "CIDRs of chain JSON-RPC providers this region's coordinators may reach on 443."
  type        = list(string)
  default     = []
}

variable "peer_proxy_cidrs" {
  description = "Application subnets of the other regions' VPCs whose parent proxies this region's coordinators call (empty without coordinators here)."
  type        = list(string)
  default     = []
}

variable "peer_coordinator_cidrs" {
  description = "Application subnets of the other regions' VPCs whose coordinators call this region's parent proxies (empty without nodes here)."
  type        = list(string)
  default     = []
}

variable "nodes" {
  description = "The nodes homed in this region, by node index (\"1\", ..): each one's availability zone (one of azs) and, where pinned, its parent role's PCR3."
  type = map(object({
    az          = string
    parent_pcr3 = optional(string)
  }))

  validation {
    condition     = alltrue([for i, n in var.nodes : contains(var.azs, n.az)])
    error_message = "Every node's az must be one of this region's azs."
  }
}

variable "measurements_files" {
  description = "eif-build measurements files of the enclave images the nodes accept (their KMS key policies and verifiers)."
  type        = list(string)
}

variable "admin_principal_arn" {
  description = "IAM principal that administers the KMS keys (and runs Terraform)."
  type        = string
}

variable "artifact_bucket" {
  description = "S3 bucket of the release artifacts in this region (the parents reach S3 through this region's gateway endpoint only)."
  type        = string
}

variable "artifact_kms_key_arn" {
  description = "KMS key of artifact_bucket when it uses SSE-KMS (null: SSE-S3)."
  type        = string
  default     = null
}

variable "eif_key" {
  description = "Object key of the enclave image (EIF)."
  type        = string
}

variable "proxy_binary_key" {
  description = "Object key of the cohort-parent-proxy binary."
  type        = string
}

variable "session_preferences" {
  description = "Whether to manage this region's Session Manager preferences (account-wide: SSM-SessionManagerRunShell)."
  type        = bool
  default     = true
}

variable "blob_lock_mode" {
  description = "Object Lock mode of this region's sealed-blob bucket (COMPLIANCE or GOVERNANCE)."
  type        = string
  default     = "COMPLIANCE"
}

variable "node_ami_id" {
  description = "The parent instances' AMI in this region, pinned. Null: the latest Amazon Linux 2023 at each apply."
  type        = string
  default     = null
}

variable "node_instance_type" {
  description = "Parent instance type (Nitro Enclaves capable)."
  type        = string
}

variable "enclave_cpu_count" {
  description = "vCPUs of each enclave."
  type        = number
}

variable "enclave_memory_mib" {
  description = "Memory of each enclave, MiB."
  type        = number
}

variable "kms_replica_region" {
  description = "The next region of the ring, where this region's node keys have their replicas (../link): ReplicateKey into any other region is denied."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
