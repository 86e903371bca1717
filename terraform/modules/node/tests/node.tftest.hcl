# One node's parent (issue 23): its instance type is checked against EC2's description of it at
# plan time — Nitro Enclaves supported, and at least 2 vCPUs left to the parent besides the
# enclave's — and the units and scripts it installs are those of files/ (scripts/check-units.sh
# verifies them with systemd-analyze). Applied against the mocked AWS provider (nothing reaches
# AWS). Run by scripts/terraform-check.sh.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  node_index          = 0
  subnet_id           = "subnet-0a"
  security_group_id   = "sg-0a"
  proxy_port          = 7070
  measurements_files  = ["../../examples/cluster/measurements.example.json"]
  admin_principal_arn = "arn:aws:iam::111122223333:role/cohort-deployer"
  artifact_bucket     = "artifacts"
  eif_key             = "cohort.eif"
  proxy_binary_key    = "cohort-parent-proxy"
  blob_bucket_name    = "cohort-111122223333-eu-west-1-sealed-blobs"
  storage_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  logs_kms_key_arn    = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  session_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-1111-1111-1111-111111111111"
}

run "a_nitro_enclaves_type_is_taken" {
  command = plan

  assert {
    condition     = terraform_data.instance_type.input == "m6i.xlarge"
    error_message = "The default type, with Nitro Enclaves and 4 vCPUs, is taken."
  }
}

run "a_type_without_nitro_enclaves_is_refused" {
  command = plan

  override_data {
    target = data.aws_ec2_instance_type.parent
    values = { nitro_enclaves_support = "unsupported", default_vcpus = 4 }
  }

  expect_failures = [terraform_data.instance_type]
}

run "a_type_too_small_for_the_enclave_is_refused" {
  command = plan

  variables {
    enclave_cpu_count = 4
  }

  expect_failures = [terraform_data.instance_type]
}

run "a_fraction_of_a_core_is_refused" {
  command = plan

  variables {
    enclave_cpu_count = 1
  }

  expect_failures = [var.enclave_cpu_count]
}

# Nodes are numbered from 0, as the coordinators number them (their i-th --proxy): node 0 is
# taken and names everything of it node-0; a negative index is refused.
run "node_zero_is_the_first_node" {
  command = apply

  assert {
    condition = (
      output.node_index == 0 &&
      output.autoscaling_group_name == "cohort-node-0" &&
      output.proxy_tunnel_document.name == "cohort-node-0-proxy-tunnel" &&
      output.proxy_tunnel_document.content.properties.portNumber == "7070" &&
      jsondecode(output.kms_key_policy).Id == "cohort-node-0"
    )
    error_message = "Node 0's group, tunnel and key are named node-0, and its tunnel forwards to the proxy port."
  }
}

run "a_negative_node_index_is_refused" {
  command = plan

  variables {
    node_index = -1
  }

  expect_failures = [var.node_index]
}

# What the node's log group counts (issue 23): the enclave's failed KMS calls, which reach the
# proxy's log over the log channel as {"source":"enclave","record":{"fields":{"event":
# "kms_failure"}}}, and systemd's reports of a failed blob copy; each filter publishes 0 when
# nothing matched. (scripts/check-units.sh checks that the units bring both into the logs.)
run "kms_and_blob_sync_failures_are_counted_from_the_logs" {
  command = apply

  assert {
    condition = (
      aws_cloudwatch_log_metric_filter.node["kms_failures"].pattern == "{ $.record.fields.event = \"kms_failure\" }" &&
      strcontains(aws_cloudwatch_log_metric_filter.node["blob_sync_failures"].pattern, "\"cohort-blob-sync.service: Failed with result\"") &&
      alltrue([for f in aws_cloudwatch_log_metric_filter.node : f.log_group_name == "/cohort/node-0" && one(f.metric_transformation).default_value == "0"]) &&
      output.log_metrics == {
        namespace          = "Cohort/Logs"
        kms_failures       = "cohort-node-0-kms-failures"
        blob_sync_failures = "cohort-node-0-blob-sync-failures"
      }
    )
    error_message = "Node 0's log group counts its enclave's KMS failures and its blob sync failures, under the names the alarms read."
  }
}
