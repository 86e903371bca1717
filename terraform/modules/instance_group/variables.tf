variable "name" {
  description = "Name of the launch template and the group, and the instances' and volumes' Name tag."
  type        = string
}

variable "kind" {
  description = "What the instances are, for error messages (\"coordinator\", \"node\")."
  type        = string
}

variable "description" {
  description = "The launch template's description."
  type        = string
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the AMI id (used when ami_id is null)."
  type        = string
}

variable "ami_id" {
  description = "The AMI, pinned. Null: the latest the SSM parameter names at each apply."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id is an AMI id (ami-0123456789abcdef0)."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
}

variable "measurements" {
  description = "The measurements module of the enclave images (documents and the paths they are written to)."
  type = object({
    documents = list(string)
    paths     = list(string)
  })
}

variable "packages" {
  description = "Packages to install besides jq, the CloudWatch agent and logrotate (before them)."
  type        = list(string)
  default     = []
}

variable "files" {
  description = "Files cloud-init writes (path, permissions, content), after the measurements."
  type = list(object({
    path        = string
    permissions = string
    content     = string
  }))
}

variable "agent_files" {
  description = "Further CloudWatch agent configuration files, written after the log rotation."
  type = list(object({
    path        = string
    permissions = string
    content     = string
  }))
  default = []
}

variable "agent_logs" {
  description = "The CloudWatch agent configuration's logs section."
  type        = any
}

variable "host_log_group_name" {
  description = "CloudWatch log group of the host's own logs: the systemd journal and cloud-init's (streams INSTANCE/journal, INSTANCE/cloud-init, INSTANCE/cloud-init-output)."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the hosts' metrics."
  type        = string
}

variable "install_commands" {
  description = "cloud-init runcmd commands after the service user is made, before the agent starts."
  type        = list(list(string))
}

variable "start_commands" {
  description = "cloud-init runcmd commands after the agent started and systemd reloaded."
  type        = list(list(string))
}

variable "instance_profile_arn" {
  description = "The instances' IAM instance profile."
  type        = string
}

variable "security_group_ids" {
  description = "Security groups of the instances' interface. Null with network_interface_id (the interface carries them)."
  type        = list(string)
  default     = null
}

variable "network_interface_id" {
  description = "A fixed network interface to attach as the primary one (it outlives instances). Null: a new interface per instance."
  type        = string
  default     = null
}

variable "enclave" {
  description = "Whether the instances run a Nitro Enclave."
  type        = bool
  default     = false
}

variable "root_volume_gb" {
  description = "Root volume size (GiB)."
  type        = number
}

variable "instance_tags" {
  description = "Further tags of the instances (not their volumes)."
  type        = map(string)
  default     = {}
}

variable "min_size" {
  description = "The group's minimum and desired number of instances."
  type        = number
}

variable "max_size" {
  description = "The group's maximum number of instances."
  type        = number
}

variable "subnet_ids" {
  description = "Subnets the group launches into."
  type        = list(string)
}

variable "target_group_arns" {
  description = "Load balancer target groups to register the instances with, if any."
  type        = list(string)
  default     = null
}

variable "health_check_grace_period" {
  description = "Seconds after launch before EC2 health checks count."
  type        = number
}

variable "rolling_refresh" {
  description = "Roll the instances when the launch template changes, within these healthy percentages. Null: no instance refresh."
  type = object({
    min_healthy_percentage = number
    max_healthy_percentage = number
  })
  default = null
}

variable "maintenance_policy" {
  description = "Healthy percentages while the group replaces instances. Null: the group's default."
  type = object({
    min_healthy_percentage = number
    max_healthy_percentage = number
  })
  default = null
}

variable "tags" {
  description = "Tags of every resource (a Name tag is added)."
  type        = map(string)
  default     = {}
}
