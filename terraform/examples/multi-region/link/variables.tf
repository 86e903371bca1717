variable "name" {
  description = "The starting region's name prefix (\"cohort-a\")."
  type        = string
}

variable "next_name" {
  description = "The next region's name prefix (\"cohort-b\")."
  type        = string
}

variable "next_region" {
  description = "The next region's name (aws.next's region): the peering's peer region."
  type        = string
}

variable "from" {
  description = "The starting region (its ./region outputs): VPC id and range, application route tables by AZ, sealed-blob bucket (name, ARN) and its storage key."
  type = object({
    vpc_id              = string
    vpc_cidr            = string
    app_route_table_ids = map(string)
    blob_bucket_name    = string
    blob_bucket_arn     = string
    storage_kms_key_arn = string
  })
}

variable "to" {
  description = "The next region (its ./region outputs): VPC id and range, application route tables by AZ, the sealed-blob bucket that receives the replicas, and its storage key."
  type = object({
    vpc_id              = string
    vpc_cidr            = string
    app_route_table_ids = map(string)
    blob_bucket_arn     = string
    storage_kms_key_arn = string
  })
}

variable "nodes" {
  description = "The nodes homed in the starting region, by index: each one's KMS key (a multi-Region primary key) and its policy, which the replica takes too."
  type = map(object({
    kms_key_arn    = string
    kms_key_policy = string
  }))
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
