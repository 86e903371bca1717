variable "name" {
  description = "The cluster's name: prefix of every resource. Each region's resources are named NAME-SLOT (cohort-a, cohort-b, cohort-c), since IAM names are global."
  type        = string
  default     = "cohort"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,17}$", var.name))
    error_message = "name: 2-18 characters, lowercase letters, digits and dashes, starting with a letter (the region's slot is appended)."
  }
}

variable "regions" {
  description = <<-EOT
    The three regions, by slot: a, the primary (the database's primary and the active coordinators);
    b, the standby (the database's cross-region read replica and the coordinators started on a
    failover); c, the third node region. Per region: its name, availability zones (at least two),
    VPC range (not overlapping another region's: the VPCs are peered), the S3 bucket of the release
    artifacts in that region (and its KMS key, if any), for a and b the ACM certificate of the
    client API there, and the AMI its parents and coordinators start from (ami_id, pinned: AMIs are
    regional; null follows the latest Amazon Linux 2023 at each apply). docs/regions.md.
  EOT
  type = map(object({
    region               = string
    azs                  = list(string)
    vpc_cidr             = string
    artifact_bucket      = string
    artifact_kms_key_arn = optional(string)
    certificate_arn      = optional(string)
    ami_id               = optional(string)
  }))

  validation {
    condition     = toset(keys(var.regions)) == toset(["a", "b", "c"])
    error_message = "regions has exactly the slots a, b and c."
  }

  validation {
    condition     = length(distinct([for s, r in var.regions : r.region])) == length(var.regions)
    error_message = "The three slots are three different regions: two slots in one region would not survive its loss."
  }

  validation {
    condition     = alltrue([for s, r in var.regions : length(r.azs) >= 2 && alltrue([for az in r.azs : startswith(az, r.region)])])
    error_message = "Each region lists at least two of its own availability zones."
  }

  # Two ranges overlap when their network addresses agree on the shorter prefix.
  validation {
    condition = alltrue(flatten([
      for s, r in var.regions : [
        for t, q in var.regions : s == t || (
          cidrsubnet("${cidrhost(r.vpc_cidr, 0)}/${min(tonumber(split("/", r.vpc_cidr)[1]), tonumber(split("/", q.vpc_cidr)[1]))}", 0, 0) !=
          cidrsubnet("${cidrhost(q.vpc_cidr, 0)}/${min(tonumber(split("/", r.vpc_cidr)[1]), tonumber(split("/", q.vpc_cidr)[1]))}", 0, 0)
        )
      ]
    ]))
    error_message = "The regions' vpc_cidr ranges must not overlap: peered VPCs route to each other by range."
  }

  validation {
    condition     = alltrue([for s in ["a", "b"] : try(var.regions[s].certificate_arn != null, false)])
    error_message = "Regions a and b run coordinators: each needs the certificate_arn of its client API (ACM certificates are regional)."
  }
}

variable "node_count" {
  description = "Signing nodes n (one enclave, parent instance and KMS key each)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 2 && var.node_count <= 10 && floor(var.node_count) == var.node_count
    error_message = "node_count is a whole number between 2 and 10."
  }
}

variable "node_regions" {
  description = "The region slot of a node, by node index (\"3\" = \"b\"), overriding the round-robin placement over a, b, c (node 0 in a, 1 in b, 2 in c, 3 in a, ..; nodes are numbered from 0, as the coordinators number them)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for i, s in var.node_regions : contains(["a", "b", "c"], s) && can(regex("^(0|[1-9][0-9]*)$", i))])
    error_message = "node_regions maps node indices (\"0\", \"1\", ..) to a slot: a, b or c."
  }

  validation {
    condition     = alltrue([for i, s in var.node_regions : try(tonumber(i) < var.node_count, true)])
    error_message = "node_regions names a node beyond node_count."
  }
}

variable "threshold" {
  description = "Signing threshold t (nodes needed to sign). The nodes must be spread so that losing any one region leaves at least t of them (checked)."
  type        = number
  default     = 2

  validation {
    condition     = var.threshold >= 1 && var.threshold <= var.node_count
    error_message = "threshold is between 1 and node_count."
  }

  # The placement as main.tf computes it (round-robin, then node_regions): for every slot, the
  # nodes outside it must still reach the threshold.
  validation {
    condition = alltrue([
      for lost in ["a", "b", "c"] : length([
        for i in range(var.node_count) : i
        if lookup(var.node_regions, tostring(i), ["a", "b", "c"][i % 3]) != lost
      ]) >= var.threshold
    ])
    error_message = "Losing one region must leave at least threshold nodes: with this placement some region holds more than node_count - threshold nodes (see node_regions)."
  }
}

variable "failed_over" {
  description = "false in normal operation. true once region a is lost and its duties moved to region b (docs/regions.md): region b's database replica and its credentials secret have been promoted, its coordinators run, region a's coordinators are stopped (and stay stopped if the region returns)."
  type        = bool
  default     = false
}

variable "db_master_password" {
  description = "The master password of the coordinators' database (region a's primary; the replica copies it). Ephemeral and write-only, never in state or plan files, but needed by every plan: a new one (TF_VAR_db_master_password) at the first apply and with every new db_password_version, otherwise the current one read back from its secret (docs/regions.md). 16 to 128 characters, none of / \" @ or space."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "db_password_version" {
  description = "Version of db_master_password: bump it, with a new password, to rotate (docs/regions.md)."
  type        = number
  default     = 1
}

variable "parent_pcr3" {
  description = "By node index (\"0\" = .., node 0 being the coordinators' first --proxy), the PCR3 of the node's parent role: `cohort kms pcr3 --role-arn arn:aws:iam::ACCOUNT:role/NAME-SLOT-node-I-parent` (the nodes output shows each role). A node left out is not pinned."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.parent_pcr3 : can(regex("^(0|[1-9][0-9]*)$", k)) && can(regex("^[0-9a-f]{96}$", v))])
    error_message = "parent_pcr3 maps node indices (\"0\", \"1\", ..) to 48 bytes of lowercase hex."
  }

  validation {
    condition     = alltrue([for k, v in var.parent_pcr3 : !can(tonumber(k)) || tonumber(k) < var.node_count])
    error_message = "parent_pcr3 names a node beyond node_count: a value for a node that does not exist would be ignored."
  }
}

variable "measurements_files" {
  description = "Measurements JSON files printed by eif-build, one per enclave image the cluster accepts (two during an image rotation)."
  type        = list(string)
}

variable "eif_key" {
  description = "Object key of the enclave image (EIF), the same in every region's artifact bucket."
  type        = string
}

variable "proxy_binary_key" {
  description = "Object key of the cohort-parent-proxy binary."
  type        = string
}

variable "coordinator_binary_key" {
  description = "Object key of the cohort-coordinator binary."
  type        = string
}

variable "db_ca_bundle_key" {
  description = "Object key of the RDS CA bundle (AWS's global-bundle.pem: it holds every region's RDS roots)."
  type        = string
}

variable "admin_api_keys" {
  description = "The bootstrap admin API credentials (at least one), as in examples/cluster: {credential = NAME, public_key = 64 lowercase hex digits}. The coordinators of both regions register them; they share the database, so the credentials added later are the same in both."
  type = list(object({
    credential = string
    public_key = string
  }))
}

variable "node_instance_type" {
  description = "Parent instance type (Nitro Enclaves capable, in every region)."
  type        = string
  default     = "m6i.xlarge"
}

variable "enclave_cpu_count" {
  description = "vCPUs of each enclave."
  type        = number
  default     = 2
}

variable "enclave_memory_mib" {
  description = "Memory of each enclave, MiB."
  type        = number
  default     = 4096
}

variable "coordinator_instance_type" {
  description = "Coordinator instance type."
  type        = string
  default     = "m6i.large"
}

variable "coordinator_count" {
  description = "Coordinators of the active region (a; b after a failover). The other region keeps its group at zero."
  type        = number
  default     = 2

  validation {
    condition     = var.coordinator_count >= 1
    error_message = "At least one coordinator."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the primary and of its replica (a replica smaller than its primary lags)."
  type        = string
  default     = "db.m6g.large"
}

variable "client_cidrs" {
  description = "CIDRs allowed to call the client API (443) in regions a and b. Empty: nobody."
  type        = list(string)
  default     = []
}

variable "coordinator_egress_cidrs" {
  description = "CIDRs of chain JSON-RPC providers the coordinators may reach on 443."
  type        = list(string)
  default     = []
}

variable "load_balancer_internal" {
  description = "Make the client API load balancers internal instead of internet-facing."
  type        = bool
  default     = false
}

variable "admin_principal_arn" {
  description = "IAM principal that administers the KMS keys (and runs Terraform: KMS refuses a node key policy that would lock its creator out)."
  type        = string
}

variable "alarm_email" {
  description = "Address that receives the alarms of every region (null: none)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = { Project = "cohort" }
}

variable "session_preferences" {
  description = "Whether to manage each region's Session Manager preferences (the account-wide document SSM-SessionManagerRunShell: shell transcripts to /NAME/sessions, encrypted). false where the account already has that document."
  type        = bool
  default     = true
}

variable "blob_lock_mode" {
  description = "Object Lock mode of every region's sealed-blob bucket: COMPLIANCE (production) or GOVERNANCE (a test deployment that must be torn down)."
  type        = string
  default     = "COMPLIANCE"
}
