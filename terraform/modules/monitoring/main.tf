# Alarms to one encrypted SNS topic: each node's instance status checks and in-service count,
# the coordinators' in-service count and target health, the database's CPU and free storage,
# the number of healthy nodes the coordinators see against the signing threshold, and every
# change to the administration of the cluster's KMS keys (an EventBridge rule on the region's
# CloudTrail events: modules/storage records them).

module "account" {
  source = "../account"
}

locals {
  actions = [aws_sns_topic.alarms.arn]

  # A region without coordinators (nor database) gets its nodes' alarms only.
  with_coordinators = var.coordinator_asg_name != null
  healthy_nodes     = coalesce(var.healthy_node_indices, keys(var.node_asg_names))
}

# CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, hence this one.
module "alarms_key" {
  source = "../kms_key"

  name             = "${var.name}-alarms"
  description      = "${var.name}: alarm topic encryption"
  account_root_arn = module.account.account_root
  statements = [{
    Sid       = "CloudWatchAlarms"
    Effect    = "Allow"
    Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
    Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
    Resource  = "*"
    Condition = {
      StringEquals = { "aws:SourceAccount" = module.account.account_id }
    }
  }]
  tags = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = module.alarms_key.arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "CloudWatchAlarms"
      Effect    = "Allow"
      Principal = { Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com"] }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alarms.arn
      Condition = {
        StringEquals = { "aws:SourceAccount" = module.account.account_id }
      }
    }]
  })
}

# --- Changes to the KMS keys' administration ------------------------------------------------

# Whoever holds the key administrator's role can still change a key's policy (an image rotation
# needs it), disable a key or schedule its deletion; no one can create a grant (the node keys'
# policies deny it), but the attempt is recorded. Each of these calls on a watched key, allowed
# or refused, pages: a policy change that lets another image in is the one way left to open a
# node's blobs (docs/threat-model.md, "The KMS key administrator"). EventBridge sees the calls
# because the region's trail records management events (modules/storage).
locals {
  kms_admin_events = [
    "PutKeyPolicy", "CreateGrant", "DisableKey", "ScheduleKeyDeletion",
    "DisableKeyRotation", "ReplicateKey", "UpdatePrimaryRegion",
    "CreateAlias", "UpdateAlias", "DeleteAlias",
  ]
  # The keys watched: the caller's and the alarm topic's own (disabling it would silence every
  # page, CloudWatch alarms included).
  watched_kms_key_arns = concat(var.watched_kms_key_arns, [module.alarms_key.arn])

  # What would silence the pager itself, anywhere in the region: stopping or narrowing the
  # trail (EventBridge sees API calls only through one), disabling or retargeting a rule,
  # unsubscribing from or reconfiguring a topic. Rare and always worth a look; the page about
  # one is the last this module can send, so docs/operator-guide.md asks for a second channel.
  monitoring_events = {
    "aws.cloudtrail" = ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutInsightSelectors"]
    "aws.events"     = ["DisableRule", "DeleteRule", "RemoveTargets", "PutRule", "PutTargets"]
    "aws.sns"        = ["Unsubscribe", "DeleteTopic", "SetTopicAttributes", "SetSubscriptionAttributes", "RemovePermission"]
    # Session Manager's preferences (a shell's transcript) and the proxy-tunnel documents
    # (one rewritten into a shell would no longer page as one).
    "aws.ssm" = ["UpdateDocument", "UpdateDocumentDefaultVersion", "DeleteDocument"]
  }
}

resource "aws_cloudwatch_event_rule" "kms_key_changes" {

  name        = "${var.name}-kms-key-changes"
  description = "A policy change, grant, disabling, deletion or replication of one of ${var.name}'s KMS keys (allowed or refused)."
  event_pattern = jsonencode({
    source        = ["aws.kms"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["kms.amazonaws.com"]
      eventName   = local.kms_admin_events
      resources   = { ARN = local.watched_kms_key_arns }
    }
  })
  tags = var.tags
}

# Root on an instance through Systems Manager, other than a node's proxy tunnel: a Session
# Manager session with any other document (a shell has none, or SSM-SessionManagerRunShell), a
# Run Command, a State Manager association or an Automation (each runs as root, the last three
# without a session). On a parent that is the host that relays the enclave's traffic, holds its
# sealed blobs and can stop it: the enclave's properties do not depend on it, but it is
# break-glass and someone should know at once: who (userIdentity), where (the target or
# instance ids) and with what (documentName). A shell's transcript is in /NAME/sessions
# (modules/network); a port forward and the other three leave none.
locals {
  host_access_events = ["SendCommand", "CreateAssociation", "UpdateAssociation", "StartAutomationExecution"]
  # Every session, or every session without a tunnel document: no document (the default shell)
  # or another one. (Through JSON: the two branches are tuples of different shapes.)
  session_branches = jsondecode(length(var.tunnel_document_names) == 0 ? jsonencode([{ eventName = ["StartSession"] }]) : jsonencode([
    { eventName = ["StartSession"], requestParameters = { documentName = [{ exists = false }] } },
    { eventName = ["StartSession"], requestParameters = { documentName = [{ "anything-but" = var.tunnel_document_names }] } },
  ]))
}

resource "aws_cloudwatch_event_rule" "shell_sessions" {
  name        = "${var.name}-host-access"
  description = "A Session Manager session other than a proxy tunnel, a Run Command, an association or an automation was started in ${var.name}'s region."
  event_pattern = jsonencode({
    source        = ["aws.ssm"]
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["ssm.amazonaws.com"]
      "$or"       = concat([{ eventName = local.host_access_events }], local.session_branches)
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "shell_sessions" {
  rule      = aws_cloudwatch_event_rule.shell_sessions.name
  target_id = "alarms"
  arn       = aws_sns_topic.alarms.arn
}

resource "aws_cloudwatch_event_rule" "monitoring_changes" {
  name        = "${var.name}-monitoring-changes"
  description = "The trail stopped or narrowed, a rule disabled or retargeted, a topic unsubscribed or reconfigured: what would silence ${var.name}'s pages."
  event_pattern = jsonencode({
    source        = keys(local.monitoring_events)
    "detail-type" = ["AWS API Call via CloudTrail"]
    detail        = { eventName = distinct(flatten(values(local.monitoring_events))) }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "monitoring_changes" {
  rule      = aws_cloudwatch_event_rule.monitoring_changes.name
  target_id = "alarms"
  arn       = aws_sns_topic.alarms.arn
}

resource "aws_cloudwatch_event_target" "kms_key_changes" {
  rule      = aws_cloudwatch_event_rule.kms_key_changes.name
  target_id = "alarms"
  arn       = aws_sns_topic.alarms.arn
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# --- Alarms on one metric -----------------------------------------------------------------

# Every alarm on a single metric, in one table, grouped by how its resources were keyed: each
# node's two alarms by node, the coordinators' and the database's by name.
locals {
  # The per-node alarms on the coordinators' gauges. Maximum over the coordinators for the
  # 0/1 gauges (a node counts as attested or healthy if any coordinator sees it so); Minimum
  # for the clock skew (one coordinator's own drifting clock does not page for every node).
  node_gauge_alarms = {
    attested = {
      suffix      = "not-attested"
      description = "the coordinators cannot verify its attestation (cohort_node_attested): it is out of quorums until they can."
      metric      = "cohort_node_attested"
      statistic   = "Maximum"
      minutes     = 3
      comparison  = "LessThanThreshold"
      threshold   = 1
    }
    # Enclaves check documents, requests and receipts against their own clock, documents
    # within a 5-minute window: a clock a minute off is caught long before peers refuse it.
    clock = {
      suffix      = "clock-skew"
      description = "its enclave clock is more than 60 s from the coordinators' (cohort_node_clock_skew_seconds): at 5 minutes its peers refuse its documents."
      metric      = "cohort_node_clock_skew_seconds"
      statistic   = "Minimum"
      minutes     = 5
      comparison  = "GreaterThanThreshold"
      threshold   = 60
    }
    healthy = {
      suffix      = "unhealthy"
      description = "no coordinator has considered it eligible for quorums for 5 minutes (cohort_node_healthy): the cluster signs without it."
      metric      = "cohort_node_healthy"
      statistic   = "Maximum"
      minutes     = 5
      comparison  = "LessThanThreshold"
      threshold   = 1
    }
  }

  # The per-node alarms on what each node's log group counts (modules/node, log_metrics): any
  # occurrence in 5 minutes pages.
  node_log_alarms = {
    kms_failures = {
      suffix      = "kms-failures"
      description = "its enclave's KMS calls failed (record.fields.event = kms_failure in its log group): it cannot seal or unseal."
    }
    blob_sync_failures = {
      suffix      = "blob-sync-failures"
      description = "copying its sealed blobs to or from S3 failed (cohort-blob-sync or fetch-blobs, in its journal): a new key's share may exist on its disk only."
    }
  }

  alarms = {
    # EC2 publishes the status checks of an Auto Scaling group's instances by group name, so the
    # alarm follows the node across instance replacements.
    node_status_check = {
      for node, asg in var.node_asg_names : node => {
        name               = "${var.name}-node-${node}-status-check"
        description        = "Node ${node}'s parent instance fails its EC2 status checks (the group replaces it; its enclave is out of quorums meanwhile)."
        namespace          = "AWS/EC2"
        metric             = "StatusCheckFailed"
        dimensions         = { AutoScalingGroupName = asg }
        statistic          = "Maximum"
        period             = 60
        evaluation_periods = 3
        comparison         = "GreaterThanOrEqualToThreshold"
        threshold          = 1
        missing_data       = "notBreaching" # no instance at all: node_in_service alarms
      }
    }
    node_in_service = {
      for node, asg in var.node_asg_names : node => {
        name               = "${var.name}-node-${node}-in-service"
        description        = "Node ${node} has no instance in service."
        namespace          = "AWS/AutoScaling"
        metric             = "GroupInServiceInstances"
        dimensions         = { AutoScalingGroupName = asg }
        statistic          = "Minimum"
        period             = 60
        evaluation_periods = 5
        comparison         = "LessThanThreshold"
        threshold          = 1
        missing_data       = "breaching"
      }
    }
    # What the coordinators see of each node (coordinator/src/metrics.rs), by the coordinators'
    # node numbering, which Terraform's node keys, ASG names and blob prefixes share: node i is
    # the coordinators' i-th --proxy. A node whose attestation stopped verifying (a changed
    # image, a forged or expired document, a clock outside the document window), whose enclave
    # clock drifts, or that has been out of quorums for 5 minutes pages on its own, before the
    # cluster as a whole drops below its threshold. In a region with coordinators: they publish
    # every node's gauges (no coordinator publishing: the healthy-nodes alarm).
    coordinator_view = !local.with_coordinators ? {} : merge([
      for kind, a in local.node_gauge_alarms : {
        for node in local.healthy_nodes : "node-${node}-${kind}" => {
          name               = "${var.name}-node-${node}-${a.suffix}"
          description        = "Node ${node}: ${a.description}"
          namespace          = var.coordinator_metrics_namespace
          metric             = a.metric
          dimensions         = { cluster = var.name, node = node }
          statistic          = a.statistic
          period             = 60
          evaluation_periods = a.minutes
          comparison         = a.comparison
          threshold          = a.threshold
          missing_data       = "notBreaching"
        }
      }
    ]...)
    # Counted from each node's logs (modules/node): its enclave could not reach or was refused
    # by KMS (a key policy or image change, a proxy without credentials, KMS away: the node
    # cannot seal or unseal, so it cannot take part in new keys or restart), or its sealed
    # blobs did not reach S3 or could not be fetched from it (a key's only copy of that share
    # is then the instance's disk).
    node_logs = length(var.node_log_metrics) == 0 ? {} : merge([
      for node, m in var.node_log_metrics : {
        for kind, a in local.node_log_alarms : "node-${node}-${a.suffix}" => {
          name               = "${var.name}-node-${node}-${a.suffix}"
          description        = "Node ${node}: ${a.description}"
          namespace          = m.namespace
          metric             = m[kind]
          dimensions         = {}
          statistic          = "Sum"
          period             = 300
          evaluation_periods = 1
          comparison         = "GreaterThanThreshold"
          threshold          = 0
          missing_data       = "notBreaching"
        }
      }
    ]...)
    cluster = !local.with_coordinators ? {} : {
      coordinators_in_service = {
        name               = "${var.name}-coordinators-in-service"
        description        = "Fewer coordinators in service than the ${var.coordinator_count} wanted."
        namespace          = "AWS/AutoScaling"
        metric             = "GroupInServiceInstances"
        dimensions         = { AutoScalingGroupName = var.coordinator_asg_name }
        statistic          = "Minimum"
        period             = 60
        evaluation_periods = 5
        comparison         = "LessThanThreshold"
        threshold          = var.coordinator_count
        missing_data       = "breaching"
      }
      coordinator_unhealthy_hosts = {
        name               = "${var.name}-coordinator-unhealthy-hosts"
        description        = "A coordinator fails /readyz: it is down, the cluster awaits genesis, or fewer than two nodes are healthy."
        namespace          = "AWS/ApplicationELB"
        metric             = "UnHealthyHostCount"
        dimensions         = { LoadBalancer = var.load_balancer_arn_suffix, TargetGroup = var.target_group_arn_suffix }
        statistic          = "Maximum"
        period             = 60
        evaluation_periods = 3
        comparison         = "GreaterThanThreshold"
        threshold          = 0
        missing_data       = "notBreaching"
      }
      db_cpu = {
        name               = "${var.name}-database-cpu"
        description        = "The coordinators' database CPU has been above 80% for 15 minutes."
        namespace          = "AWS/RDS"
        metric             = "CPUUtilization"
        dimensions         = { DBInstanceIdentifier = var.db_instance_identifier }
        statistic          = "Average"
        period             = 300
        evaluation_periods = 3
        comparison         = "GreaterThanThreshold"
        threshold          = 80
        missing_data       = "breaching"
      }
      db_free_storage = {
        name               = "${var.name}-database-free-storage"
        description        = "The coordinators' database has less than 10% of its allocated storage free."
        namespace          = "AWS/RDS"
        metric             = "FreeStorageSpace"
        dimensions         = { DBInstanceIdentifier = var.db_instance_identifier }
        statistic          = "Minimum"
        period             = 300
        evaluation_periods = 2
        comparison         = "LessThanThreshold"
        threshold          = var.db_allocated_storage_gb * 1024 * 1024 * 1024 / 10
        missing_data       = "breaching"
      }
    }
  }
}

module "alarms" {
  source   = "../metric_alarms"
  for_each = local.alarms

  alarms  = each.value
  actions = local.actions
  tags    = var.tags
}

# --- Healthy nodes against the threshold --------------------------------------------------

# cohort_node_healthy{node} (coordinator/src/metrics.rs) is 1 while the coordinator considers
# the node eligible for quorums. Every coordinator publishes it; a node counts as healthy when
# any coordinator sees it so (Maximum). Fewer healthy nodes than the threshold: no signing.
# In a region with coordinators only; across regions it counts every node of the cluster
# (healthy_node_indices), wherever the node runs.
resource "aws_cloudwatch_metric_alarm" "healthy_nodes" {
  count = local.with_coordinators ? 1 : 0

  alarm_name          = "${var.name}-healthy-nodes-below-threshold"
  alarm_description   = "Fewer than ${var.threshold} nodes are healthy (cohort_node_healthy): the cluster cannot sign."
  comparison_operator = "LessThanThreshold"
  threshold           = var.threshold
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = var.healthy_nodes_missing_data
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "healthy"
    label       = "Healthy nodes"
    return_data = true
    expression  = join(" + ", [for node in local.healthy_nodes : "FILL(n${node}, 0)"])
  }

  dynamic "metric_query" {
    for_each = toset(local.healthy_nodes)
    content {
      id = "n${metric_query.key}"
      metric {
        namespace   = var.coordinator_metrics_namespace
        metric_name = "cohort_node_healthy"
        dimensions  = { cluster = var.name, node = metric_query.key }
        stat        = "Maximum"
        period      = 60
      }
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.threshold >= 1 && var.threshold <= length(local.healthy_nodes)
      error_message = "threshold must be between 1 and the number of nodes."
    }
  }
}

# --- Presignature pools ----------------------------------------------------------------------

# cohort_presignatures_ready (coordinator/src/metrics.rs), by key (modules/coordinator's agent
# keeps the cluster and key labels; each path and quorum's pool is a data point of its key).
# A pool empty for 15 minutes means presigned ECDSA falls back to full signing (seconds, not
# milliseconds) and its refills fail or cannot keep up. One alarm over every key, by a Metrics
# Insights query (keys come and go without Terraform); no ECDSA key with a pool: no data.
resource "aws_cloudwatch_metric_alarm" "presignature_pools" {
  count = local.with_coordinators ? 1 : 0

  alarm_name          = "${var.name}-presignature-pool-empty"
  alarm_description   = "A key's presignature pool has been empty for 15 minutes (cohort_presignatures_ready): presigned ECDSA requests fall back to full signing; refills are failing or cannot keep up."
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id          = "emptiest"
    label       = "Ready presignatures in the emptiest pool"
    return_data = true
    period      = 300
    expression  = "SELECT MIN(cohort_presignatures_ready) FROM SCHEMA(\"${coalesce(var.coordinator_metrics_namespace, "none")}\", cluster, key) WHERE cluster = '${var.name}'"
  }

  tags = var.tags
}
