# Applies the whole example against a mocked AWS provider (nothing reaches AWS) and checks what
# the configuration computes: the KMS key policies against `cohort kms policy` (cli/src/kms.rs),
# node placement, the coordinators' proxy order, and that every user data fits EC2's limit
# (a precondition), also with several bootstrap admin keys; and that bad admin keys are refused
# (modules/coordinator/tests checks the --admin-key files and flags themselves). Run by scripts/terraform-check.sh.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  region                 = "eu-west-1"
  azs                    = ["eu-west-1a", "eu-west-1b"]
  measurements_files     = ["measurements.example.json"]
  artifact_bucket        = "artifacts"
  eif_key                = "cohort.eif"
  proxy_binary_key       = "cohort-parent-proxy"
  coordinator_binary_key = "cohort-coordinator"
  db_ca_bundle_key       = "rds-global-bundle.pem"
  client_cidrs           = ["203.0.113.0/24"]
  certificate_arn        = "arn:aws:acm:eu-west-1:111122223333:certificate/mock"
  admin_principal_arn    = "arn:aws:iam::111122223333:role/cohort-deployer"
  # `cohort kms pcr3 --role-arn arn:aws:iam::111122223333:role/mock-parent` (the mocked role).
  parent_pcr3 = { "0" = "391dc275119dab28f7c0ff33ac135cb618f1ae7e183991fed433748a562a2a6ee036e67082847d43b7d26535cc594ed1" }
  # RFC 8032's first Ed25519 test vector's public key.
  admin_api_keys = [{ credential = "alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" }]
}

run "one_image" {
  command = apply

  assert {
    condition     = toset(keys(output.nodes)) == toset(["0", "1", "2"])
    error_message = "node_count = 3 makes nodes 0, 1 and 2 (the coordinators' numbering)."
  }

  assert {
    condition     = [for i in ["0", "1", "2"] : output.nodes[i].az] == ["eu-west-1a", "eu-west-1b", "eu-west-1a"]
    error_message = "Nodes are spread round-robin over the AZs."
  }

  assert {
    condition = [for s in jsondecode(output.kms_key_policies["1"]).Statement : s.Sid] == [
      "KeyAdministration", "EnclaveUse", "DenyWithoutAttestation", "DenyOtherImages", "DenyReEncrypt", "DenyGrants",
    ]
    error_message = "The key policy has the statements of `cohort kms policy`, in its order."
  }

  assert {
    condition     = jsondecode(output.kms_key_policies["0"]) == jsondecode(file("tests/cli-policy-node-0.json"))
    error_message = "Node 0's key policy equals `cohort kms policy --node 0` for the same measurements, role and admin (tests/cli-policy-node-0.json, which tests/tests/cli.rs checks against the CLI)."
  }

  assert {
    condition = (
      jsondecode(output.kms_key_policies["0"]).Statement[1].Condition.StringEqualsIgnoreCase["kms:RecipientAttestation:PCR3"] == var.parent_pcr3["0"] &&
      !contains(keys(jsondecode(output.kms_key_policies["1"]).Statement[1].Condition.StringEqualsIgnoreCase), "kms:RecipientAttestation:PCR3")
    )
    error_message = "A node given parent_pcr3 requires it of every enclave; a node without is not pinned."
  }

  assert {
    condition = output.genesis_prepare_args == [
      "--kms-key=0=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000",
      "--kms-key=1=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000",
      "--kms-key=2=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000",
      "--pcr3=0=${var.parent_pcr3["0"]}",
    ]
    error_message = "genesis_prepare_args gives prepare every node's KMS key and the pinned PCR3, 0-based."
  }

  assert {
    condition     = jsondecode(output.kms_key_policies["1"]).Id == "cohort-node-1"
    error_message = "The policy id names the node."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["1"]).Statement[1].Condition.StringEqualsIgnoreCase == {
      "kms:RecipientAttestation:ImageSha384" = jsondecode(file("measurements.example.json")).Measurements.PCR0
      "kms:RecipientAttestation:PCR0"        = jsondecode(file("measurements.example.json")).Measurements.PCR0
      "kms:RecipientAttestation:PCR1"        = jsondecode(file("measurements.example.json")).Measurements.PCR1
      "kms:RecipientAttestation:PCR2"        = jsondecode(file("measurements.example.json")).Measurements.PCR2
    }
    error_message = "EnclaveUse requires exactly the image's ImageSha384 (PCR0), PCR0, PCR1 and PCR2 (and PCR3 where pinned)."
  }

  assert {
    condition = (
      jsondecode(output.kms_key_policies["1"]).Statement[1].Condition["ForAllValues:StringEquals"] == {
        "kms:EncryptionContextKeys" = ["cohort:blob", "cohort:cluster", "cohort:id", "cohort:node"]
      } &&
      jsondecode(output.kms_key_policies["1"]).Statement[1].Condition.StringEquals == {
        "kms:EncryptionContext:cohort:blob" = ["aux-info", "ecdsa-share", "eddsa-share", "genesis", "node-key"]
      } &&
      jsondecode(output.kms_key_policies["1"]).Statement[1].Condition.Null == {
        "kms:EncryptionContext:cohort:id" = "false"
      }
    )
    error_message = "EnclaveUse requires the enclave's encryption context: Cohort's keys only, a known blob kind, a key id."
  }

  assert {
    condition = (
      jsondecode(output.kms_key_policies["0"]).Statement[1].Action == ["kms:GenerateDataKey", "kms:Decrypt"] &&
      jsondecode(output.kms_key_policies["0"]).Statement[1].Principal.AWS == output.nodes["0"].parent_role_arn
    )
    error_message = "Only the node's parent role may GenerateDataKey and Decrypt."
  }

  assert {
    condition = alltrue([
      for a in jsondecode(output.kms_key_policies["2"]).Statement[0].Action :
      !contains(["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:ReEncrypt*"], a) && !strcontains(a, "*")
    ])
    error_message = "The admin manages the key but may neither use it nor grant its use: every action is named, none is a wildcard (kms:Create* would take in kms:CreateGrant)."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["2"]).Statement[3] == {
      Sid       = "DenyOtherImages"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = { StringNotEqualsIgnoreCase = { "kms:RecipientAttestation:ImageSha384" = [lower(jsondecode(file("measurements.example.json")).Measurements.PCR0)] } }
    }
    error_message = "Decrypt and GenerateDataKey* with a document of another image than the allowed ones are denied to everyone, whatever a grant or another statement allows."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["2"]).Statement[5] == {
      Sid       = "DenyGrants"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = "kms:CreateGrant"
      Resource  = "*"
    }
    error_message = "No one may create a grant on a node's key."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["2"]).Statement[2] == {
      Sid       = "DenyWithoutAttestation"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = { Null = { "kms:RecipientAttestation:ImageSha384" = "true" } }
    }
    error_message = "Decrypt and GenerateDataKey* without an attestation document are denied to everyone."
  }

  assert {
    condition = (
      module.monitoring.kms_key_changes_rule.pattern.detail.eventName == [
        "PutKeyPolicy", "CreateGrant", "DisableKey", "ScheduleKeyDeletion",
        "DisableKeyRotation", "ReplicateKey", "UpdatePrimaryRegion",
        "CreateAlias", "UpdateAlias", "DeleteAlias",
      ] &&
      module.monitoring.kms_key_changes_rule.pattern.source == ["aws.kms"] &&
      module.monitoring.kms_key_changes_rule.pattern["detail-type"] == ["AWS API Call via CloudTrail"] &&
      length(module.monitoring.kms_key_changes_rule.pattern.detail.resources.ARN) == 3 + 5 + 1 &&
      module.monitoring.kms_key_changes_rule.target == module.monitoring.alarm_topic_arn
    )
    error_message = "A policy change, grant, disabling, deletion, replication or alias change of any of the cluster's keys (three nodes', storage, trail, logs, sessions, database, the alarm topic's) pages the alarm topic."
  }

  assert {
    condition = (
      contains(module.monitoring.monitoring_changes_rule.pattern.detail.eventName, "StopLogging") &&
      contains(module.monitoring.monitoring_changes_rule.pattern.detail.eventName, "DisableRule") &&
      contains(module.monitoring.monitoring_changes_rule.pattern.detail.eventName, "Unsubscribe") &&
      module.monitoring.monitoring_changes_rule.target == module.monitoring.alarm_topic_arn
    )
    error_message = "Stopping the trail, disabling a rule or unsubscribing from the topic pages too."
  }

  assert {
    condition     = output.nodes["1"].proxy_url == "http://10.40.16.10:7070"
    error_message = "The proxy URL is the fixed interface's address on port 7070."
  }

  assert {
    condition = (
      output.nodes["1"].proxy_tunnel_document == "cohort-node-1-proxy-tunnel" &&
      module.node["1"].proxy_tunnel_document.content.sessionType == "Port" &&
      module.node["1"].proxy_tunnel_document.content.properties.portNumber == "7070" &&
      !contains(keys(module.node["1"].proxy_tunnel_document.content.parameters), "portNumber") &&
      !contains(keys(module.node["1"].proxy_tunnel_document.content.parameters), "host")
    )
    error_message = "Each node's proxy tunnel forwards to the proxy port and nowhere else: the caller chooses only its local port."
  }

  assert {
    condition = (
      module.monitoring.shell_sessions_rule.name == "cohort-host-access" &&
      module.monitoring.shell_sessions_rule.pattern.detail["$or"][0].eventName == ["SendCommand", "CreateAssociation", "UpdateAssociation", "StartAutomationExecution"] &&
      module.monitoring.shell_sessions_rule.pattern.detail["$or"][1].eventName == ["StartSession"] &&
      module.monitoring.shell_sessions_rule.pattern.detail["$or"][1].requestParameters.documentName == [{ exists = false }] &&
      module.monitoring.shell_sessions_rule.pattern.detail["$or"][2].eventName == ["StartSession"] &&
      tolist(module.monitoring.shell_sessions_rule.pattern.detail["$or"][2].requestParameters.documentName[0]["anything-but"]) == tolist([for i in ["0", "1", "2"] : output.nodes[i].proxy_tunnel_document]) &&
      module.monitoring.shell_sessions_rule.target == module.monitoring.alarm_topic_arn &&
      contains(module.monitoring.monitoring_changes_rule.pattern.detail.eventName, "UpdateDocument")
    )
    error_message = "Root on an instance through Systems Manager pages: every session but the nodes' proxy tunnels (a shell: no document, or any other), Run Command, associations and automations; so does a change to a session document."
  }

  assert {
    condition = (
      module.network.session_preferences.content.inputs.cloudWatchLogGroupName == "/cohort/sessions" &&
      module.network.session_preferences.content.inputs.cloudWatchEncryptionEnabled &&
      module.network.session_preferences.content.inputs.cloudWatchStreamingEnabled &&
      module.network.session_preferences.name == "SSM-SessionManagerRunShell" &&
      module.network.session_preferences.log_group_kms_key_arn == module.network.logs_kms_key_arn
    )
    error_message = "Sessions are logged, encrypted, to /NAME/sessions (the instance roles may write there: session_log_group_arn)."
  }
}

run "image_rotation" {
  command = apply

  variables {
    measurements_files = ["measurements.example.json", "tests/next-image.json"]
  }

  assert {
    condition = [for s in jsondecode(output.kms_key_policies["0"]).Statement : s.Sid] == [
      "KeyAdministration", "EnclaveUseImage0", "EnclaveUseImage1", "DenyWithoutAttestation", "DenyOtherImages", "DenyReEncrypt", "DenyGrants",
    ]
    error_message = "Two images give one EnclaveUse statement each, so their PCRs cannot be mixed."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["0"]).Statement[4].Condition.StringNotEqualsIgnoreCase["kms:RecipientAttestation:ImageSha384"] == [
      lower(jsondecode(file("measurements.example.json")).Measurements.PCR0),
      lower(jsondecode(file("tests/next-image.json")).Measurements.PCR0),
    ]
    error_message = "During a rotation the deny lets both images through, and no third."
  }

  assert {
    condition = (
      jsondecode(output.kms_key_policies["0"]).Statement[2].Condition.StringEqualsIgnoreCase["kms:RecipientAttestation:PCR8"]
      == jsondecode(file("tests/next-image.json")).Measurements.PCR8
    )
    error_message = "A signed image's statement also requires its PCR8."
  }

  assert {
    condition = alltrue([
      for s in slice(jsondecode(output.kms_key_policies["0"]).Statement, 1, 3) :
      s.Condition.StringEquals == { "kms:EncryptionContext:cohort:blob" = ["aux-info", "ecdsa-share", "eddsa-share", "genesis", "node-key"] }
    ])
    error_message = "Every image's statement requires the encryption context, not only the first."
  }

  assert {
    condition     = length(output.measurements) == 2
    error_message = "Both images are reported in effect."
  }
}

run "node_moved_after_az_loss" {
  command = apply

  variables {
    node_az_overrides = { "0" = "eu-west-1b" }
  }

  assert {
    condition     = output.nodes["0"].az == "eu-west-1b"
    error_message = "node_az_overrides moves a node to another AZ."
  }
}

# One node numbering everywhere (issue 23): the coordinators number nodes by --proxy position
# from 0 (API, metrics, audit log, quorums; tests/tests/coordinator.rs reads node="2" of three),
# and Terraform's node i is their node i: its key, ASG, blob prefix, alarms and --proxy slot.
run "one_node_numbering" {
  command = apply

  # The mocked provider gives every interface one address, so this pins the list, and
  # modules/coordinator/tests pins that the unit passes it as --proxy flags in its order.
  assert {
    condition     = module.coordinator.proxy_urls == tolist([for i in ["0", "1", "2"] : output.nodes[i].proxy_url])
    error_message = "The coordinators' i-th --proxy is Terraform's node i."
  }

  assert {
    condition = (
      [for i in ["0", "1", "2"] : output.nodes[i].autoscaling_group_name] == ["cohort-node-0", "cohort-node-1", "cohort-node-2"] &&
      [for i in ["0", "1", "2"] : jsondecode(output.kms_key_policies[i]).Id] == ["cohort-node-0", "cohort-node-1", "cohort-node-2"] &&
      [for i in ["0", "1", "2"] : module.node[i].node_index] == [0, 1, 2]
    )
    error_message = "Node i's Auto Scaling group and KMS key policy are named node-i."
  }

  assert {
    condition = (
      { for k, d in module.monitoring.alarm_dimensions.node_status_check : k => d.AutoScalingGroupName } == { for i, n in output.nodes : i => n.autoscaling_group_name } &&
      { for k, d in module.monitoring.alarm_dimensions.node_in_service : k => d.AutoScalingGroupName } == { for i, n in output.nodes : i => n.autoscaling_group_name }
    )
    error_message = "Node i's EC2 and Auto Scaling alarms watch node i's group."
  }

  assert {
    condition = (
      { for k, m in module.monitoring.alarm_metrics.node_logs : k => m.name } == merge([
        for i in ["0", "1", "2"] : {
          "node-${i}-kms-failures"       = module.node[i].log_metrics.kms_failures
          "node-${i}-blob-sync-failures" = module.node[i].log_metrics.blob_sync_failures
        }
      ]...) &&
      [for i in ["0", "1", "2"] : module.node[i].log_metrics.kms_failures] == ["cohort-node-0-kms-failures", "cohort-node-1-kms-failures", "cohort-node-2-kms-failures"] &&
      alltrue([for k, m in module.monitoring.alarm_metrics.node_logs : m.namespace == "Cohort/Logs"])
    )
    error_message = "Node i's KMS-failure and blob-sync-failure alarms read the metrics node i's log group counts."
  }

  assert {
    condition     = module.monitoring.presignature_pool_alarm_query == "SELECT MIN(cohort_presignatures_ready) FROM SCHEMA(\"${module.coordinator.metrics_namespace}\", cluster, key) WHERE cluster = 'cohort'"
    error_message = "The empty-pool alarm reads the pool gauge with the dimensions the coordinators' agent publishes it under."
  }

  assert {
    condition = (
      sort(module.monitoring.healthy_nodes_alarm_nodes) == tolist(["0", "1", "2"]) &&
      alltrue([for k, d in module.monitoring.alarm_dimensions.coordinator_view : d.cluster == "cohort" && length(d) == 2]) &&
      { for k, d in module.monitoring.alarm_dimensions.coordinator_view : k => d.node } == {
        "node-0-attested" = "0"
        "node-1-attested" = "1"
        "node-2-attested" = "2"
        "node-0-healthy"  = "0"
        "node-1-healthy"  = "1"
        "node-2-healthy"  = "2"
        "node-0-clock"    = "0"
        "node-1-clock"    = "1"
        "node-2-clock"    = "2"
      }
    )
    error_message = "The alarms on the coordinators' node gauges read node=\"0\"..\"2\", the labels the coordinators publish for their three --proxy flags (the healthy-nodes alarm once read \"1\"..\"3\" and missed node 0)."
  }
}

run "pinned_amis" {
  command = apply

  variables {
    node_ami_id        = "ami-0123456789abcdef0"
    coordinator_ami_id = "ami-0fedcba9876543210"
  }

  assert {
    condition = (
      output.ami_ids.nodes == { "0" = "ami-0123456789abcdef0", "1" = "ami-0123456789abcdef0", "2" = "ami-0123456789abcdef0" } &&
      output.ami_ids.coordinator == "ami-0fedcba9876543210"
    )
    error_message = "Pinned AMIs are the ones every launch template starts instances from."
  }
}

run "node_az_override_of_a_node_that_does_not_exist_is_refused" {
  command = plan

  variables {
    node_az_overrides = { "3" = "eu-west-1b" }
  }

  expect_failures = [var.node_az_overrides]
}

run "parent_pcr3_must_be_a_sha384_value" {
  command = plan

  variables {
    parent_pcr3 = { "0" = "391dc275" }
  }

  expect_failures = [var.parent_pcr3]
}

run "parent_pcr3_of_a_node_that_does_not_exist_is_refused" {
  command = plan

  variables {
    parent_pcr3 = { "3" = "391dc275119dab28f7c0ff33ac135cb618f1ae7e183991fed433748a562a2a6ee036e67082847d43b7d26535cc594ed1" }
  }

  expect_failures = [var.parent_pcr3]
}

run "several_admin_keys_fit_the_user_data" {
  command = apply

  # Eight admins (RFC 8032's test vector 1 key with its last byte varied): the coordinators'
  # user data still fits EC2's 16 KiB (instance_group's precondition).
  variables {
    admin_api_keys = [
      for i in range(8) : {
        credential = "admin-${i}"
        public_key = format("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751%02x", i)
      }
    ]
  }

  assert {
    condition     = length(var.admin_api_keys) == 8
    error_message = "Eight admin keys are accepted."
  }
}

run "admin_key_name_must_be_a_credential_name" {
  command = plan

  variables {
    admin_api_keys = [{ credential = "Alice Smith", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" }]
  }

  expect_failures = [var.admin_api_keys]
}

run "admin_key_must_be_an_ed25519_public_key_in_hex" {
  command = plan

  variables {
    admin_api_keys = [{ credential = "alice", public_key = "d75a980182b10ab7" }]
  }

  expect_failures = [var.admin_api_keys]
}

run "admin_key_in_two_credentials_is_refused" {
  command = plan

  variables {
    admin_api_keys = [
      { credential = "alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" },
      { credential = "bob", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" },
    ]
  }

  expect_failures = [var.admin_api_keys]
}
