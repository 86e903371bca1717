variable "alarms" {
  description = "The alarms, by a key of the caller's choosing: name, description, the metric (namespace, metric, dimensions, statistic over period seconds), evaluation_periods, comparison (operator) against threshold, and missing_data (treat_missing_data)."
  type = map(object({
    name               = string
    description        = string
    namespace          = string
    metric             = string
    dimensions         = map(string)
    statistic          = string
    period             = number
    evaluation_periods = number
    comparison         = string
    threshold          = number
    missing_data       = string
  }))
}

variable "actions" {
  description = "ARNs notified when an alarm fires and when it recovers (SNS topics)."
  type        = list(string)
}

variable "tags" {
  description = "Tags of every alarm."
  type        = map(string)
  default     = {}
}
