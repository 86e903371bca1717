# Instances of one kind kept running by an Auto Scaling group: the launch template (the AMI from
# an SSM parameter, IMDSv2 only, detailed monitoring, an encrypted gp3 root volume, the cloud-init
# user data, built here around the caller's files and commands, gzip-compressed and checked
# against EC2's 16 KiB limit) and the group (EC2 health checks, group metrics,
# every tag propagated). The coordinators and each node's parent instance are such groups; what
# differs between them is variables: the network (security groups, or a fixed interface), Nitro
# Enclaves, the group's sizes and how it replaces instances.

locals {
  # The host's own logs, shipped beside the caller's: the journal (cohort-journal.service copies
  # it to a file, as the agent reads only files) and cloud-init's, which say why an instance
  # that never came up did not.
  host_logs = [
    for stream, log in {
      "journal"           = "/var/log/cohort-journal/journal.log"
      "cloud-init"        = "/var/log/cloud-init.log"
      "cloud-init-output" = "/var/log/cloud-init-output.log"
      } : {
      file_path       = log
      log_group_name  = var.host_log_group_name
      log_stream_name = "{instance_id}/${stream}"
    }
  ]

  # The CloudWatch agent: the caller's logs section with the host's logs added, and the host's
  # memory and disk metrics.
  cloudwatch_agent = {
    logs = merge(var.agent_logs, {
      logs_collected = merge(var.agent_logs.logs_collected, {
        files = {
          collect_list = concat(var.agent_logs.logs_collected.files.collect_list, local.host_logs)
        }
      })
    })
    metrics = {
      namespace         = var.metrics_namespace
      append_dimensions = { InstanceId = "$${aws:InstanceId}" }
      metrics_collected = {
        mem  = { measurement = ["mem_used_percent"] }
        disk = { measurement = ["used_percent"], resources = ["/"] }
      }
    }
  }

  # Files written by cloud-init: the enclave images' measurements, the caller's files, the log
  # rotation, the agent's further configuration and its own.
  files = concat(
    [
      for i, doc in var.measurements.documents : {
        path        = var.measurements.paths[i]
        permissions = "0644"
        content     = doc
      }
    ],
    var.files,
    [
      { path = "/etc/logrotate.d/cohort", permissions = "0644", content = file("${path.module}/files/logrotate.conf") },
      { path = "/etc/tmpfiles.d/cohort.conf", permissions = "0644", content = file("${path.module}/files/tmpfiles.conf") },
      { path = "/etc/systemd/system/cohort-journal.service", permissions = "0644", content = file("${path.module}/files/cohort-journal.service") },
    ],
    var.agent_files,
    [{ path = "/etc/cohort/cloudwatch-agent.json", permissions = "0644", content = jsonencode(local.cloudwatch_agent) }],
  )

  # The service user and its directories (tmpfiles.d/cohort.conf: made now, and at every boot
  # before any service starts), the caller's install commands, the agent started, systemd
  # reloaded, then the caller's start commands.
  user_data = "#cloud-config\n${yamlencode({
    packages    = concat(var.packages, ["jq", "amazon-cloudwatch-agent", "logrotate"])
    write_files = local.files
    runcmd = concat(
      [
        ["useradd", "--system", "--no-create-home", "--shell", "/sbin/nologin", "cohort"],
        ["systemd-tmpfiles", "--create", "/etc/tmpfiles.d/cohort.conf"],
      ],
      var.install_commands,
      [
        ["/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl", "-a", "fetch-config", "-m", "ec2", "-s", "-c", "file:/etc/cohort/cloudwatch-agent.json"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "cohort-journal.service"],
      ],
      var.start_commands,
    )
  })}"
}

# The AMI: ami_id when pinned (production: a new parent or coordinator OS is then a reviewed
# change, rolled out like any other), else the latest one the SSM parameter names at this apply.
data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0
  name  = var.ami_ssm_parameter
}

locals {
  user_data_gzip = base64gzip(local.user_data)
  # The compressed bytes EC2 receives: three per four base64 characters, less the padding.
  user_data_bytes = floor(length(local.user_data_gzip) * 3 / 4) - length(regexall("=", local.user_data_gzip))
}

locals {
  ami_id = var.ami_id != null ? var.ami_id : data.aws_ssm_parameter.ami[0].insecure_value
}

resource "aws_launch_template" "this" {
  name                   = var.name
  description            = var.description
  image_id               = local.ami_id
  instance_type          = var.instance_type
  ebs_optimized          = true
  update_default_version = true
  # Gzip-compressed (cloud-init recognises gzip and inflates it): EC2's 16 KiB limit is on the
  # bytes it is given, and the units, scripts and measurements compress about four-fold.
  user_data              = local.user_data_gzip
  vpc_security_group_ids = var.security_group_ids

  iam_instance_profile {
    arn = var.instance_profile_arn
  }

  dynamic "enclave_options" {
    for_each = var.enclave ? [true] : []
    content {
      enabled = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  # A fixed interface as the primary one (it carries the security group).
  dynamic "network_interfaces" {
    for_each = var.network_interface_id == null ? [] : [var.network_interface_id]
    content {
      device_index          = 0
      network_interface_id  = network_interfaces.value
      delete_on_termination = false
    }
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name }, var.instance_tags)
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = var.name })
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.user_data_bytes < 16384
      error_message = "The ${var.kind}'s cloud-init user data exceeds EC2's 16 KiB limit (${local.user_data_bytes} bytes compressed)."
    }
  }
}

resource "aws_autoscaling_group" "this" {
  name                      = var.name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.min_size
  vpc_zone_identifier       = var.subnet_ids
  target_group_arns         = var.target_group_arns
  health_check_type         = "EC2"
  health_check_grace_period = var.health_check_grace_period
  enabled_metrics           = ["GroupInServiceInstances", "GroupDesiredCapacity", "GroupTotalInstances"]
  metrics_granularity       = "1Minute"

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # A changed launch template rolls the instances, within these bounds, when set.
  dynamic "instance_refresh" {
    for_each = var.rolling_refresh == null ? [] : [var.rolling_refresh]
    content {
      strategy = "Rolling"
      preferences {
        min_healthy_percentage = instance_refresh.value.min_healthy_percentage
        max_healthy_percentage = instance_refresh.value.max_healthy_percentage
      }
    }
  }

  dynamic "instance_maintenance_policy" {
    for_each = var.maintenance_policy == null ? [] : [var.maintenance_policy]
    content {
      min_healthy_percentage = instance_maintenance_policy.value.min_healthy_percentage
      max_healthy_percentage = instance_maintenance_policy.value.max_healthy_percentage
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # Operators suspend launches while they move a node after losing an AZ (docs/operator-guide.md,
  # step 8) and resume them afterwards themselves; an apply in between must not resume them.
  lifecycle {
    ignore_changes = [suspended_processes]
  }
}
