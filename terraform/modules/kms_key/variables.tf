variable "name" {
  description = "The key's alias (alias/NAME) and Name tag."
  type        = string
}

variable "description" {
  description = "The key's description."
  type        = string
}

variable "account_root_arn" {
  description = "The account root (arn:PARTITION:iam::ACCOUNT:root): kms:* for it, so that IAM policies can grant use of the key. Null: no such statement, and IAM policies cannot widen access to the key."
  type        = string
  default     = null
}

variable "admin_principal_arn" {
  description = "Principal that manages the key without being able to use it. Null: no administration statement."
  type        = string
  default     = null
}

variable "statements" {
  description = "The key policy's further statements (IAM policy statement objects), after the root and administration ones."
  type        = any
  default     = []
}

variable "policy_id" {
  description = "The key policy's Id, if any."
  type        = string
  default     = null
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled deletion. Null: left unset (AWS waits 30 days)."
  type        = number
  default     = null
}

variable "tags" {
  description = "Tags of the key (a Name tag is added)."
  type        = map(string)
  default     = {}
}

variable "multi_region" {
  description = "Make the key a multi-Region primary key (replicas in other regions share its key material; the caller makes them with aws_kms_replica_key) and let the administrator replicate it (kms:ReplicateKey). Changing it replaces the key."
  type        = bool
  default     = false
}
