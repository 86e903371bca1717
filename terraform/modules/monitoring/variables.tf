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
  description = "Each node's Auto Scaling group name, by node index (as a string: \"1\", \"2\", ...)."
  type        = map(string)
}

variable "coordinator_asg_name" {
  description = "The coordinators' Auto Scaling group."
  type        = string
}

variable "coordinator_count" {
  description = "Coordinators the group should keep in service."
  type        = number
}

variable "coordinator_metrics_namespace" {
  description = "Namespace of the coordinator metrics scraped from /metrics."
  type        = string
}

variable "load_balancer_arn_suffix" {
  description = "ARN suffix of the client API load balancer."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "ARN suffix of the coordinators' target group."
  type        = string
}

variable "db_instance_identifier" {
  description = "The coordinators' RDS instance."
  type        = string
}

variable "db_allocated_storage_gb" {
  description = "The database's allocated storage, GB (the free-storage alarm fires below 10% of it)."
  type        = number
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
