variable "name" {
  description = "Name prefix of every resource (the cluster's name)."
  type        = string
  default     = "cohort"
}

variable "vpc_id" {
  description = "The VPC (network module)."
  type        = string
}

variable "app_subnet_ids" {
  description = "Application subnets, one per AZ: the coordinators spread across them."
  type        = list(string)

  validation {
    condition     = length(var.app_subnet_ids) >= 2
    error_message = "Coordinators need subnets in at least two availability zones."
  }
}

variable "public_subnet_ids" {
  description = "Public subnets for an internet-facing load balancer."
  type        = list(string)
}

variable "data_subnet_ids" {
  description = "Database subnets (at least two AZs, for Multi-AZ)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups from the network module: load_balancer, coordinator and database."
  type        = map(string)
}

variable "proxy_urls" {
  description = "Each node's proxy URL (http://IP:7070), in node order: one --proxy flag each."
  type        = list(string)

  validation {
    condition     = length(var.proxy_urls) >= 2
    error_message = "A cluster has at least two nodes."
  }
}

variable "measurements_files" {
  description = "eif-build measurements files of the enclave images the coordinators accept (same list as the nodes')."
  type        = list(string)
}

variable "artifact_bucket" {
  description = "S3 bucket holding the release artifacts."
  type        = string
}

variable "coordinator_binary_key" {
  description = "Object key of the cohort-coordinator binary (x86_64 Linux) in artifact_bucket."
  type        = string
}

variable "db_ca_bundle_key" {
  description = "Object key in artifact_bucket of the RDS CA bundle (PEM; AWS's global bundle, global-bundle.pem): installed as /etc/cohort/rds-ca.pem, the roots the coordinators check the database's TLS certificate against (--store-ca)."
  type        = string
}

variable "artifact_kms_key_arn" {
  description = "KMS key encrypting artifact_bucket's objects, when it uses SSE-KMS (null: SSE-S3)."
  type        = string
  default     = null
}

variable "admin_principal_arn" {
  description = "IAM principal that administers the database key."
  type        = string
}

variable "instance_type" {
  description = "Coordinator instance type."
  type        = string
  default     = "m6i.large"
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the coordinator AMI id (Amazon Linux 2023, x86_64)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "root_volume_gb" {
  description = "Root volume size (encrypted gp3)."
  type        = number
  default     = 20
}

variable "coordinator_count" {
  description = "Coordinators behind the load balancer (spread across AZs)."
  type        = number
  default     = 2

  validation {
    condition     = var.coordinator_count >= 1
    error_message = "At least one coordinator."
  }
}

variable "coordinator_port" {
  description = "Port of the coordinators' HTTP API (--listen 0.0.0.0:PORT)."
  type        = number
  default     = 7000
}

variable "pool_level" {
  description = "Ready presignatures kept per ECDSA key, path and quorum (--pool-level)."
  type        = number
  default     = 4
}

variable "load_balancer_internal" {
  description = "Whether the client API load balancer is internal (application subnets) rather than internet-facing (public subnets)."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate of the client API's TLS listener."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the client API listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes one client IP may make before the WAF blocks it."
  type        = number
  default     = 3000
}

variable "log_bucket_name" {
  description = "Access-log bucket (storage module); load balancer logs go under lb/."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key for the coordinators' CloudWatch log groups (network module)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the coordinators' CloudWatch log groups."
  type        = number
  default     = 365
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the coordinator metrics scraped from /metrics."
  type        = string
  default     = "Cohort/Coordinator"
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.m6g.large"
}

variable "db_engine_version" {
  description = "PostgreSQL major version (the parameter group family follows it)."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gb" {
  description = "Initial database storage."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 500
}

variable "db_backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
