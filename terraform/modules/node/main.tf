# One signing node: a Nitro-Enclaves parent instance kept alive by an Auto Scaling group of
# exactly one, always launched onto the same network interface, so the proxy's private IP (the
# coordinators' --proxy URL) survives every instance replacement.

# The node's fixed address. The launch template attaches it as the primary interface
# (delete_on_termination = false), so it outlives instances. It pins the node to one subnet and
# so one availability zone.
#
# Moving the node to another AZ (operator guide, section 8) replaces the interface: the new one
# is made first and the launch template points at it before the old one is deleted, so an AZ
# whose API cannot delete the old interface (the AZ that was lost) does not hold the node back;
# the old one stays deposed until a later apply deletes it.
resource "aws_network_interface" "proxy" {
  subnet_id       = var.subnet_id
  security_groups = [var.security_group_id]
  description     = "${var.name} node ${var.node_index}: parent proxy (stable address)"

  tags = merge(var.tags, { Name = "${var.name}-node-${var.node_index}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "node" {
  name              = "/${var.name}/node-${var.node_index}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

# Counted from the node's log group: the enclave's failed KMS calls (its records reach the
# proxy's log over the log channel, `{"source":"enclave","record":{...,"fields":{"event":
# "kms_failure"}}}`) and the failed copies of its sealed blobs, up (cohort-blob-sync) or down
# (fetch-blobs, the proxy's ExecStartPre), as systemd reports them in the journal
# (cohort-journal.service ships it). Each filter publishes 0 when nothing matched, so the alarms
# (modules/monitoring) always have data.
locals {
  log_metrics = {
    kms_failures = {
      metric  = "${var.name}-node-${var.node_index}-kms-failures"
      pattern = "{ $.record.fields.event = \"kms_failure\" }"
    }
    blob_sync_failures = {
      metric  = "${var.name}-node-${var.node_index}-blob-sync-failures"
      pattern = "?\"cohort-blob-sync.service: Failed with result\" ?\"cohort-parent-proxy.service: Control process exited\""
    }
  }
}

resource "aws_cloudwatch_log_metric_filter" "node" {
  for_each = local.log_metrics

  name           = each.value.metric
  log_group_name = aws_cloudwatch_log_group.node.name
  pattern        = each.value.pattern

  metric_transformation {
    name          = each.value.metric
    namespace     = var.log_metrics_namespace
    value         = "1"
    default_value = "0"
    unit          = "Count"
  }
}

# The parent's instance type, as EC2 describes it: refused at plan time unless it supports Nitro
# Enclaves and leaves the parent at least 2 vCPUs besides the enclave's.
data "aws_ec2_instance_type" "parent" {
  instance_type = var.instance_type
}

resource "terraform_data" "instance_type" {
  input = var.instance_type

  lifecycle {
    precondition {
      condition     = data.aws_ec2_instance_type.parent.nitro_enclaves_support == "supported"
      error_message = "instance_type ${var.instance_type} does not support Nitro Enclaves."
    }
    precondition {
      condition     = data.aws_ec2_instance_type.parent.default_vcpus - var.enclave_cpu_count >= 2
      error_message = "instance_type ${var.instance_type} has ${data.aws_ec2_instance_type.parent.default_vcpus} vCPUs: the enclave's ${var.enclave_cpu_count} would leave the parent fewer than 2."
    }
  }
}

locals {
  template_vars = {
    node               = var.node_index
    region             = module.account.region
    cpu_count          = var.enclave_cpu_count
    memory_mib         = var.enclave_memory_mib
    proxy_port         = var.proxy_port
    blob_bucket        = var.blob_bucket_name
    kms_key_arn        = module.key.arn
    measurements_paths = module.measurements.paths
  }
}

# Self-healing: an instance that fails its EC2 status checks is terminated and replaced onto the
# same interface. The group never runs two instances (the interface can be attached to only one),
# so replacements terminate first (min_healthy_percentage = 0).
module "group" {
  source = "../instance_group"

  name                 = "${var.name}-node-${var.node_index}"
  kind                 = "node"
  description          = "${var.name} node ${var.node_index}: Nitro Enclaves parent"
  ami_ssm_parameter    = var.ami_ssm_parameter
  ami_id               = var.ami_id
  instance_type        = var.instance_type
  instance_profile_arn = module.role.instance_profile_arn
  network_interface_id = aws_network_interface.proxy.id
  enclave              = true
  root_volume_gb       = var.root_volume_gb
  instance_tags        = { CohortNode = tostring(var.node_index) }

  # The units and the allocator configuration are templates in files/ so an operator can read
  # exactly what runs. Configuration that a package also ships is written under /etc/cohort
  # (cloud-init writes files before it installs packages) and installed in place.
  packages     = ["aws-nitro-enclaves-cli", "openssl"]
  measurements = module.measurements
  files = [
    { path = "/etc/cohort/allocator.yaml", permissions = "0644", content = templatefile("${path.module}/files/allocator.yaml.tftpl", local.template_vars) },
    { path = "/usr/local/libexec/cohort/run-enclave", permissions = "0755", content = templatefile("${path.module}/files/run-enclave.sh.tftpl", local.template_vars) },
    { path = "/usr/local/libexec/cohort/fetch-blobs", permissions = "0755", content = templatefile("${path.module}/files/fetch-blobs.sh.tftpl", local.template_vars) },
    { path = "/usr/local/libexec/cohort/sync-blobs", permissions = "0755", content = templatefile("${path.module}/files/sync-blobs.sh.tftpl", local.template_vars) },
    { path = "/etc/systemd/system/cohort-enclave.service", permissions = "0644", content = templatefile("${path.module}/files/cohort-enclave.service.tftpl", local.template_vars) },
    { path = "/etc/systemd/system/cohort-parent-proxy.service", permissions = "0644", content = templatefile("${path.module}/files/cohort-parent-proxy.service.tftpl", local.template_vars) },
    { path = "/etc/systemd/system/cohort-blob-sync.service", permissions = "0644", content = templatefile("${path.module}/files/cohort-blob-sync.service.tftpl", local.template_vars) },
    { path = "/etc/systemd/system/cohort-blob-sync.path", permissions = "0644", content = file("${path.module}/files/cohort-blob-sync.path") },
    { path = "/etc/systemd/system/cohort-blob-sync.timer", permissions = "0644", content = file("${path.module}/files/cohort-blob-sync.timer") },
  ]
  agent_logs = {
    logs_collected = {
      files = {
        collect_list = [{
          file_path       = "/var/log/cohort/parent-proxy.log"
          log_group_name  = aws_cloudwatch_log_group.node.name
          log_stream_name = "{instance_id}/parent-proxy"
        }]
      }
    }
  }
  host_log_group_name = aws_cloudwatch_log_group.node.name
  metrics_namespace   = var.metrics_namespace
  install_commands = [
    ["mkdir", "-p", "/opt/cohort"],
    ["aws", "s3", "cp", "--region", module.account.region, "--only-show-errors", "s3://${var.artifact_bucket}/${var.eif_key}", "/opt/cohort/cohort.eif"],
    ["aws", "s3", "cp", "--region", module.account.region, "--only-show-errors", "s3://${var.artifact_bucket}/${var.proxy_binary_key}", "/usr/local/bin/cohort-parent-proxy"],
    ["chmod", "0755", "/usr/local/bin/cohort-parent-proxy"],
    ["install", "-m", "0644", "/etc/cohort/allocator.yaml", "/etc/nitro_enclaves/allocator.yaml"],
  ]
  start_commands = [
    ["systemctl", "enable", "--now", "nitro-enclaves-allocator.service"],
    ["systemctl", "enable", "--now", "cohort-enclave.service", "cohort-parent-proxy.service"],
    ["systemctl", "enable", "--now", "cohort-blob-sync.path", "cohort-blob-sync.timer"],
  ]

  min_size                  = 1
  max_size                  = 1
  subnet_ids                = [var.subnet_id]
  health_check_grace_period = 600
  maintenance_policy        = { min_healthy_percentage = 0, max_healthy_percentage = 100 }

  tags = var.tags
}
