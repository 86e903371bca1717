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

variable "admin_api_keys" {
  description = "The deployment's bootstrap admin API credentials (ADR 0017): each the public half `cohort credential new --credential NAME --out key.json --public key.pub.json` wrote on its admin's machine, {credential = NAME, public_key = 64 lowercase hex digits of the Ed25519 public key}. Written to /etc/cohort/admin-keys/NAME.json on every coordinator and passed as --admin-key; a coordinator registers each as role admin at start unless a credential of that name exists (same key: left alone, revoked stays revoked; another key: it refuses to start). Public keys, not secrets: plain values in tfvars are fine. The first admin registers every other credential with `cohort credential add`."
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

variable "ami_id" {
  description = "The coordinator AMI, pinned (production: a new OS is then a reviewed change; output ami_id shows the one in use). Null: the latest ami_ssm_parameter names, at each apply."
  type        = string
  default     = null
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
  description = "Coordinators behind the load balancer (spread across AZs). 0 only for a standby region's coordinators, whose database is a read replica they cannot use until it is promoted (docs/regions.md)."
  type        = number
  default     = 2

  validation {
    condition     = var.coordinator_count >= 0 && floor(var.coordinator_count) == var.coordinator_count
    error_message = "coordinator_count is a whole number, at least 1 (0: a standby region's)."
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

variable "db_secret_replicas" {
  description = "Make this region's database the primary of cross-region read replicas: by replica region, the KMS key (ARN, in that region) under which Secrets Manager keeps the replica of the master credentials there. RDS makes no read replica of an instance whose password it manages, so the password is then db_master_password, kept in a secret of this module. Null: a standalone database with an RDS-managed password. See docs/regions.md."
  type        = map(string)
  default     = null

  validation {
    condition     = var.db_secret_replicas == null || alltrue([for r, k in coalesce(var.db_secret_replicas, {}) : can(regex("^arn:[a-z-]+:kms:${r}:[0-9]{12}:key/.+$", k))])
    error_message = "db_secret_replicas maps a region to a KMS key ARN in that same region."
  }
}

variable "db_replica_of" {
  description = "Make this region's database a read replica of another region's primary (a module with db_secret_replicas naming this region): source_db_arn, the primary instance's ARN; secret_arn, the replica of its credentials secret in this region (the primary's secret ARN with this region in it), and secret_kms_key_arn, the key it is encrypted under here (the primary's db_secret_replicas value for this region; null: this module's database key). Until promoted the replica refuses writes, so its coordinators stay at coordinator_count = 0. promoted = true once the replica and the secret have been promoted after a region loss (docs/regions.md): a standalone instance with backups, still reading that secret (source_db_arn is then only a record). Null: not a replica."
  type = object({
    source_db_arn      = string
    secret_arn         = string
    secret_kms_key_arn = optional(string)
    promoted           = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.db_replica_of == null || can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", try(var.db_replica_of.secret_arn, "")))
    error_message = "db_replica_of.secret_arn is a Secrets Manager secret ARN."
  }

  validation {
    condition     = var.db_replica_of == null || var.db_secret_replicas == null
    error_message = "A database is either the replicated primary (db_secret_replicas) or a replica (db_replica_of), not both."
  }
}

variable "db_master_password" {
  description = "The replicated primary's master password (with db_secret_replicas only). Ephemeral and write-only, in no state or plan file: written to the instance and the secret when db_password_version changes (creation, rotation), yet required in every plan, so read it back from the secret otherwise (docs/regions.md). 16 to 128 characters, none of / \" @ or space (RDS's rule)."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true

  # Every plan of a replicated database needs it: the provider refuses a write-only password
  # version without the password.
  validation {
    condition     = var.db_secret_replicas == null || var.db_master_password != null
    error_message = "The replicated database (db_secret_replicas) needs db_master_password in every plan: TF_VAR_db_master_password, read back from its secret, or a new one with a new db_password_version (docs/regions.md)."
  }

  validation {
    condition     = var.db_master_password == null || can(regex("^[!#-.0-?A-~]{16,128}$", var.db_master_password))
    error_message = "db_master_password: 16 to 128 printable ASCII characters, none of / \" @ or space."
  }
}

variable "db_password_version" {
  description = "Version of db_master_password (with db_secret_replicas only): the password is written to the instance and to a new version of the secret when this changes. Bump it, with a new db_master_password, to rotate."
  type        = number
  default     = 1

  validation {
    condition     = var.db_password_version >= 1 && floor(var.db_password_version) == var.db_password_version
    error_message = "db_password_version is a whole number from 1."
  }
}
