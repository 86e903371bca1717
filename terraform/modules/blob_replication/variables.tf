variable "name" {
  description = "Name prefix of the source region's resources (the replication role is NAME-blob-replication; IAM names are global)."
  type        = string
}

variable "source_bucket_name" {
  description = "The sealed-blob bucket to replicate (modules/storage, blob_bucket_name); versioned, as S3 requires."
  type        = string
}

variable "source_bucket_arn" {
  description = "Its ARN."
  type        = string
}

variable "source_kms_key_arn" {
  description = "Its SSE-KMS storage key (modules/storage, storage_kms_key_arn)."
  type        = string
}

variable "destination_bucket_arn" {
  description = "The bucket in another region that receives the replicas (versioned; e.g. that region's own sealed-blob bucket)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:s3:::[a-z0-9.-]+$", var.destination_bucket_arn))
    error_message = "destination_bucket_arn is a bucket ARN (arn:PARTITION:s3:::NAME)."
  }
}

variable "destination_kms_key_arn" {
  description = "The KMS key (ARN) of the destination's region under which S3 encrypts the replicas; its region is the destination's."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.destination_kms_key_arn))
    error_message = "destination_kms_key_arn is a KMS key ARN (its region is the destination's)."
  }
}

variable "prefixes" {
  description = "The prefixes to replicate: the source region's own nodes, \"node-I/\" (never the replicas it holds for another region)."
  type        = list(string)

  validation {
    condition     = length(var.prefixes) >= 1 && alltrue([for p in var.prefixes : can(regex("^node-(0|[1-9][0-9]*)/$", p))])
    error_message = "prefixes are one or more node prefixes, \"node-I/\"."
  }
}

variable "tags" {
  description = "Tags of the replication role."
  type        = map(string)
  default     = {}
}
