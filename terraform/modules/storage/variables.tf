variable "name" {
  description = "Name prefix of every resource (the cluster's name); bucket names add the account id and region."
  type        = string
  default     = "cohort"
}

variable "admin_principal_arn" {
  description = "IAM principal that administers (but does not use) the storage key."
  type        = string
}

variable "blob_noncurrent_days" {
  description = "How long an overwritten sealed-blob version stays recoverable."
  type        = number
  default     = 365
}

variable "blob_lock_days" {
  description = "Object Lock retention of each sealed-blob version: it cannot be deleted or overwritten before (at most blob_noncurrent_days, after which an overwritten version expires)."
  type        = number
  default     = 365

  validation {
    condition     = var.blob_lock_days >= 1 && var.blob_lock_days <= var.blob_noncurrent_days
    error_message = "blob_lock_days is between 1 and blob_noncurrent_days."
  }
}

variable "blob_lock_mode" {
  description = "Object Lock mode of the sealed-blob bucket: COMPLIANCE (no one, not even the account root, removes a blob version early) or GOVERNANCE (principals with s3:BypassGovernanceRetention may; for test deployments that must be torn down)."
  type        = string
  default     = "COMPLIANCE"

  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.blob_lock_mode)
    error_message = "blob_lock_mode is COMPLIANCE or GOVERNANCE."
  }
}

variable "access_log_days" {
  description = "How long access logs (S3 server access logs, load balancer access logs) are kept."
  type        = number
  default     = 365
}

variable "trail_days" {
  description = "How long CloudTrail log files are kept (the trail's bucket; at least trail_lock_days)."
  type        = number
  default     = 2557 # seven years
}

variable "trail_lock_days" {
  description = "Object Lock retention of each CloudTrail log file: it cannot be deleted or overwritten before."
  type        = number
  default     = 365

  validation {
    condition     = var.trail_lock_days >= 1
    error_message = "trail_lock_days is at least 1."
  }
}

variable "trail_lock_mode" {
  description = "Object Lock mode of the trail's bucket: COMPLIANCE (no one, not even the account root, shortens it) or GOVERNANCE (principals with s3:BypassGovernanceRetention may; for test deployments that must be torn down)."
  type        = string
  default     = "COMPLIANCE"

  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.trail_lock_mode)
    error_message = "trail_lock_mode is COMPLIANCE or GOVERNANCE."
  }
}

variable "trail_log_days" {
  description = "Retention of the trail's CloudWatch Logs copy, days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
