# The coordinators: an Auto Scaling group spread across the AZs behind the client API load
# balancer (lb.tf), sharing the PostgreSQL database (database.tf).

module "measurements" {
  source = "../measurements"
  files  = var.measurements_files
}

# The coordinators' log groups: their log file; the CloudWatch agent's Prometheus scrapes as
# embedded-metric-format events, from which CloudWatch extracts the metrics named in the agent
# configuration below; the client API's WAF (whose log groups must be named aws-waf-logs-*).
locals {
  log_group_names = {
    service    = "/${var.name}/coordinator"
    prometheus = "/${var.name}/coordinator/prometheus"
    waf        = "aws-waf-logs-${var.name}-client-api"
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_group_names

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

# The RDS CA bundle comes from the artifact bucket like the binary (reviewed and uploaded with
# the release): the coordinators have no route to AWS's trust store on the internet, and the
# bundle is far larger than the 16 KiB of user data.
locals {
  db_ca_file = "/etc/cohort/rds-ca.pem"
}

# The bootstrap admins' public halves, one file each in the form `cohort credential new` writes
# ({"credential", "public_key"}), passed as --admin-key: each coordinator registers them as role
# admin at start unless the name exists (ADR 0017). Public keys only, so readable by all.
locals {
  admin_key_files = [
    for k in var.admin_api_keys : {
      path        = "/etc/cohort/admin-keys/${k.credential}.json"
      permissions = "0644"
      content     = "${jsonencode({ credential = k.credential, public_key = k.public_key })}\n"
    }
  ]
}

locals {
  template_vars = {
    region             = module.account.region
    coordinator_port   = var.coordinator_port
    proxy_urls         = var.proxy_urls
    measurements_paths = module.measurements.paths
    pool_level         = var.pool_level
    secret_arn         = local.db_secret
    db_host            = aws_db_instance.this.address
    db_port            = local.db_port
    db_name            = local.db_name
    db_ca_file         = local.db_ca_file
    db_app_role        = local.db_app_role
    admin_key_paths    = local.admin_key_files[*].path
  }

  coordinator_unit = templatefile("${path.module}/files/cohort-coordinator.service.tftpl", local.template_vars)

  # What cloud-init writes besides the measurements (instance_group adds those, the log
  # rotation and the agent's configuration).
  files = concat(
    [
      { path = "/usr/local/libexec/cohort/db-env", permissions = "0700", content = templatefile("${path.module}/files/db-env.sh.tftpl", local.template_vars) },
      { path = "/etc/systemd/system/cohort-db-env.service", permissions = "0644", content = file("${path.module}/files/cohort-db-env.service") },
      { path = "/etc/systemd/system/cohort-db-grant.service", permissions = "0644", content = templatefile("${path.module}/files/cohort-db-grant.service.tftpl", local.template_vars) },
      { path = "/etc/systemd/system/cohort-coordinator.service", permissions = "0644", content = local.coordinator_unit },
    ],
    local.admin_key_files,
  )

  # Prometheus scrape of the local coordinator. The cluster label becomes a metric dimension.
  prometheus = {
    global = { scrape_interval = "1m", scrape_timeout = "10s" }
    scrape_configs = [{
      job_name     = "cohort-coordinator"
      metrics_path = "/metrics"
      static_configs = [{
        targets = ["127.0.0.1:${var.coordinator_port}"]
        labels  = { cluster = var.name }
      }]
    }]
  }

  # The agent's logs: the coordinator's log file, and the Prometheus scrapes as embedded-metric-
  # format events in their own group.
  agent_logs = {
    logs_collected = {
      files = {
        collect_list = [{
          file_path       = "/var/log/cohort/coordinator.log"
          log_group_name  = aws_cloudwatch_log_group.this["service"].name
          log_stream_name = "{instance_id}/coordinator"
        }]
      }
    }
    metrics_collected = {
      prometheus = {
        log_group_name         = aws_cloudwatch_log_group.this["prometheus"].name
        prometheus_config_path = "/etc/cohort/prometheus.yaml"
        emf_processor = {
          metric_declaration_dedup = true
          metric_namespace         = var.metrics_namespace
          # Node gauges from coordinator/src/metrics.rs (cohort_node_healthy: eligible for
          # quorums; cohort_node_clock_skew_seconds: its enclave's clock against the
          # coordinator's), by node; the in-flight signing requests for the whole cluster.
          metric_declaration = [
            {
              source_labels    = ["job"]
              label_matcher    = "^cohort-coordinator$"
              dimensions       = [["cluster", "node"]]
              metric_selectors = ["^cohort_node_healthy$", "^cohort_node_up$", "^cohort_node_attested$", "^cohort_node_clock_skew_seconds$"]
            },
            {
              source_labels    = ["job"]
              label_matcher    = "^cohort-coordinator$"
              dimensions       = [["cluster"]]
              metric_selectors = ["^cohort_live_requests$"]
            },
            # Ready presignatures, by key (cohort_presignatures_ready{key,path,quorum}: each
            # path and quorum's pool is a data point of the key's series, so its Minimum is
            # the key's emptiest pool).
            {
              source_labels    = ["job"]
              label_matcher    = "^cohort-coordinator$"
              dimensions       = [["cluster", "key"]]
              metric_selectors = ["^cohort_presignatures_ready$"]
            },
          ]
        }
      }
    }
  }
}

# The load balancer routes on /readyz, but the group replaces instances on EC2 health only:
# /readyz also fails while the cluster awaits genesis or has fewer than two healthy nodes
# (Service::ready), and replacing coordinators then would not help. The coordinator process
# itself is restarted by systemd.
module "group" {
  source = "../instance_group"

  name                 = "${var.name}-coordinator"
  kind                 = "coordinator"
  description          = "${var.name} coordinator"
  ami_ssm_parameter    = var.ami_ssm_parameter
  ami_id               = var.ami_id
  instance_type        = var.instance_type
  instance_profile_arn = module.role.instance_profile_arn
  security_group_ids   = [var.security_group_ids.coordinator]
  root_volume_gb       = var.root_volume_gb

  measurements        = module.measurements
  files               = local.files
  agent_files         = [{ path = "/etc/cohort/prometheus.yaml", permissions = "0644", content = yamlencode(local.prometheus) }]
  agent_logs          = local.agent_logs
  host_log_group_name = aws_cloudwatch_log_group.this["service"].name
  metrics_namespace   = var.metrics_namespace
  install_commands = [
    ["aws", "s3", "cp", "--region", module.account.region, "--only-show-errors", "s3://${var.artifact_bucket}/${var.coordinator_binary_key}", "/usr/local/bin/cohort-coordinator"],
    ["chmod", "0755", "/usr/local/bin/cohort-coordinator"],
    ["aws", "s3", "cp", "--region", module.account.region, "--only-show-errors", "s3://${var.artifact_bucket}/${var.db_ca_bundle_key}", local.db_ca_file],
    ["chmod", "0644", local.db_ca_file],
  ]
  start_commands = [["systemctl", "enable", "--now", "cohort-coordinator.service"]]

  min_size                  = var.coordinator_count
  max_size                  = var.coordinator_count + 1
  subnet_ids                = var.app_subnet_ids
  target_group_arns         = [aws_lb_target_group.coordinator.arn]
  health_check_grace_period = 300
  # A changed launch template (new binary key, measurements, proxies) rolls the coordinators one
  # at a time, launching the replacement before terminating.
  rolling_refresh = { min_healthy_percentage = 100, max_healthy_percentage = 150 }

  tags = var.tags
}
