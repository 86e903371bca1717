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

variable "access_log_days" {
  description = "How long access logs (S3 server access logs, load balancer access logs) are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
