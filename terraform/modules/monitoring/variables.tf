variable "name" {
  description = "Name prefix of every resource (the cluster's name)."
  type        = string
  default     = "cohort"
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic (it must confirm the subscription). Null: no subscription."
  type        = string
  default     = null
}

variable "threshold" {
  description = "Signing threshold t: the cluster can sign while at least t nodes are healthy."
  type        = number
}

variable "node_asg_names" {
  description = "Each node's Auto Scaling group name, by node index (as a string: \"0\", \"1\", ..., the coordinators' numbering): the nodes in this region, whose EC2 and Auto Scaling alarms live here."
  type        = map(string)
}

variable "tunnel_document_names" {
  description = "The nodes' proxy-tunnel Session Manager documents (modules/node): the one routine kind of session. Every other session started in the region (a shell, or any other document) pages."
  type        = list(string)
  default     = []
}

variable "node_log_metrics" {
  description = "The metrics each node's log group counts (modules/node output log_metrics), by node index as in node_asg_names: each failed KMS call of its enclave or failed blob copy pages."
  type = map(object({
    namespace          = string
    kms_failures       = string
    blob_sync_failures = string
  }))
  default = {}
}

variable "healthy_node_indices" {
  description = "The nodes the healthy-nodes alarm counts, by index (\"0\", \"1\", ...): every node of the cluster, also those in other regions (the coordinators here publish each one's health). Null: the keys of node_asg_names."
  type        = list(string)
  default     = null
}

variable "healthy_nodes_missing_data" {
  description = "How the healthy-nodes alarm treats missing data: breaching (coordinators that publish nothing count as no healthy node), or notBreaching for a standby region whose coordinators are scaled to zero until a failover (docs/regions.md)."
  type        = string
  default     = "breaching"

  validation {
    condition     = contains(["breaching", "notBreaching"], var.healthy_nodes_missing_data)
    error_message = "healthy_nodes_missing_data is breaching or notBreaching."
  }
}

variable "coordinator_asg_name" {
  description = "The coordinators' Auto Scaling group. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = string
  default     = null
}

variable "coordinator_count" {
  description = "Coordinators the group should keep in service. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = number
  default     = null
}

variable "coordinator_metrics_namespace" {
  description = "Namespace of the coordinator metrics scraped from /metrics. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = string
  default     = null
}

variable "load_balancer_arn_suffix" {
  description = "ARN suffix of the client API load balancer. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = string
  default     = null
}

variable "target_group_arn_suffix" {
  description = "ARN suffix of the coordinators' target group. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = string
  default     = null
}

variable "db_instance_identifier" {
  description = "The coordinators' RDS instance. Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = string
  default     = null
}

variable "db_allocated_storage_gb" {
  description = "The database's allocated storage, GB (the free-storage alarm fires below 10% of it). Null, with the other coordinator and database inputs: a region without coordinators (node alarms only)."
  type        = number
  default     = null
}

variable "watched_kms_key_arns" {
  description = "KMS keys in this region whose administration pages (PutKeyPolicy, CreateGrant, DisableKey, ScheduleKeyDeletion, DisableKeyRotation, ReplicateKey, UpdatePrimaryRegion, alias changes; allowed or refused): the node keys and their replicas here, the storage, trail, logs and database keys. The alarm topic's own key is always watched. The region needs a trail recording management events (modules/storage makes one)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.watched_kms_key_arns : can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", arn))])
    error_message = "watched_kms_key_arns holds KMS key ARNs."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
