variable "name" {
  description = "The role's name (and its instance profile's)."
  type        = string
}

variable "description" {
  description = "The role's description."
  type        = string
  default     = null
}

variable "service" {
  description = "The service principal that assumes the role."
  type        = string
  default     = "ec2.amazonaws.com"
}

variable "assume_role_condition" {
  description = "Condition of the trust policy's statement, if any."
  type        = any
  default     = null
}

variable "instance_profile" {
  description = "Whether the role gets an instance profile of the same name (EC2)."
  type        = bool
  default     = false
}

variable "policy_name" {
  description = "Name of the inline policy (statements and host statements)."
  type        = string
  default     = null
}

variable "statements" {
  description = "The inline policy's own statements, before the host statements."
  type        = any
  default     = []
}

variable "host" {
  description = "For a Cohort instance's role: the log groups it writes (ARNs), its metrics namespace and the release artifacts' KMS key (null if none). Null: no host statements."
  type = object({
    log_group_arns       = list(string)
    metrics_namespace    = string
    artifact_kms_key_arn = string
  })
  default = null
}

variable "managed_policies" {
  description = "AWS-managed policies to attach, by a key of the caller's choosing: the path after arn:PARTITION:iam::aws:policy/."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags of the role and the instance profile."
  type        = map(string)
  default     = {}
}
