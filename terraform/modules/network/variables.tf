variable "name" {
  description = "Name prefix of every resource (the cluster's name)."
  type        = string
  default     = "cohort"
}

variable "vpc_cidr" {
  description = "The VPC's IPv4 range; each tier gets a /24 (at a /16) per availability zone."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR of /18 or larger."
  }
}

variable "azs" {
  description = "Availability zones to span (at least two): a public, an application and a database subnet in each."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2 && length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must name at least two distinct availability zones."
  }
}

variable "client_cidrs" {
  description = "CIDRs allowed to reach the client API load balancer on 443. Empty: nobody until set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0))])
    error_message = "client_cidrs must be IPv4 CIDRs."
  }
}

variable "coordinator_egress_cidrs" {
  description = "CIDRs the coordinators may reach on 443 through the NAT gateways (chain JSON-RPC providers for the coordinator's --rpc). Empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.coordinator_egress_cidrs : can(cidrhost(c, 0))])
    error_message = "coordinator_egress_cidrs must be IPv4 CIDRs."
  }
}

variable "peer_proxy_cidrs" {
  description = "Application subnets of other regions' VPCs (peered) whose parent proxies this region's coordinators call on proxy_port: a multi-region cluster (docs/regions.md). Empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.peer_proxy_cidrs : can(cidrhost(c, 0)) && try(tonumber(split("/", c)[1]) >= 16, false)])
    error_message = "peer_proxy_cidrs must be IPv4 CIDRs of peered subnets, /16 or narrower (never 0.0.0.0/0)."
  }
}

variable "peer_coordinator_cidrs" {
  description = "Application subnets of other regions' VPCs (peered) whose coordinators may call this region's parent proxies on proxy_port: a multi-region cluster (docs/regions.md). Empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.peer_coordinator_cidrs : can(cidrhost(c, 0)) && try(tonumber(split("/", c)[1]) >= 16, false)])
    error_message = "peer_coordinator_cidrs must be IPv4 CIDRs of peered subnets, /16 or narrower (never 0.0.0.0/0)."
  }
}

variable "s3_bucket_names" {
  description = "The cluster's buckets the instances reach through the S3 gateway endpoint (the release artifacts, the sealed blobs): its policy allows no other bucket, besides Amazon Linux's package repositories and SSM's own, read-only."
  type        = list(string)

  validation {
    condition     = length(var.s3_bucket_names) > 0 && alltrue([for b in var.s3_bucket_names : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b))])
    error_message = "s3_bucket_names lists bucket names (not ARNs), at least one."
  }
}

variable "proxy_port" {
  description = "TCP port of the parent proxies' HTTP API (cohort-parent-proxy --listen)."
  type        = number
  default     = 7070
}

variable "coordinator_port" {
  description = "TCP port of the coordinators' HTTP API (cohort-coordinator --listen)."
  type        = number
  default     = 7000
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints (private DNS), so parents and coordinators need no internet path to them."
  type        = list(string)
  default     = ["kms", "sts", "logs", "monitoring", "ssm", "ssmmessages", "ec2messages", "secretsmanager"]
}

variable "session_preferences" {
  description = "Whether to manage the region's Session Manager preferences (the account-wide document SSM-SessionManagerRunShell): sessions logged to /NAME/sessions. false where the account already manages that document."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the VPC flow logs (and the default for other Cohort log groups)."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
