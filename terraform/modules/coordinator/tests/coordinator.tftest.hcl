# The coordinators' bootstrap admins (ADR 0017): each admin_api_keys entry becomes a root-owned
# /etc/cohort/admin-keys/NAME.json among cloud-init's files, in the form `cohort credential new`
# writes, and one --admin-key flag of the rendered unit; bad entries are refused by validation.
# Applied against the mocked AWS provider (nothing reaches AWS). Run by
# scripts/terraform-check.sh.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  vpc_id            = "vpc-0123456789abcdef0"
  app_subnet_ids    = ["subnet-0a", "subnet-0b"]
  public_subnet_ids = ["subnet-1a", "subnet-1b"]
  data_subnet_ids   = ["subnet-2a", "subnet-2b"]
  security_group_ids = {
    load_balancer = "sg-0a"
    coordinator   = "sg-0b"
    database      = "sg-0c"
  }
  proxy_urls             = ["http://10.40.16.10:7070", "http://10.40.17.10:7070", "http://10.40.16.11:7070"]
  measurements_files     = ["../../examples/cluster/measurements.example.json"]
  artifact_bucket        = "artifacts"
  coordinator_binary_key = "cohort-coordinator"
  db_ca_bundle_key       = "rds-global-bundle.pem"
  admin_principal_arn    = "arn:aws:iam::111122223333:role/cohort-deployer"
  certificate_arn        = "arn:aws:acm:eu-west-1:111122223333:certificate/mock"
  log_bucket_name        = "cohort-logs"
  logs_kms_key_arn       = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  session_kms_key_arn    = "arn:aws:kms:eu-west-1:111122223333:key/11111111-1111-1111-1111-111111111111"
  # Ephemeral: a test sets it in every run (an unset ephemeral root variable trips terraform test
  # between plan and apply). Used by the replicated database only.
  db_master_password = "mock-only-Passw0rd-not-a-secret"
  # RFC 8032's first two Ed25519 test vectors' public keys.
  admin_api_keys = [
    { credential = "alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" },
    { credential = "ops.bob-2", public_key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c" },
  ]
}

run "admin_keys" {
  command = apply

  assert {
    condition = [for f in local.files : f if startswith(f.path, "/etc/cohort/admin-keys/")] == [
      {
        path        = "/etc/cohort/admin-keys/alice.json"
        permissions = "0644"
        content     = "{\"credential\":\"alice\",\"public_key\":\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"}\n"
      },
      {
        path        = "/etc/cohort/admin-keys/ops.bob-2.json"
        permissions = "0644"
        content     = "{\"credential\":\"ops.bob-2\",\"public_key\":\"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c\"}\n"
      },
    ]
    error_message = "Each admin key is one 0644 file under /etc/cohort/admin-keys/, named after its credential, holding {\"credential\", \"public_key\"} as `cohort credential new --public` writes it."
  }

  assert {
    condition = (
      strcontains(local.coordinator_unit, "  --admin-key /etc/cohort/admin-keys/alice.json \\\n") &&
      strcontains(local.coordinator_unit, "  --admin-key /etc/cohort/admin-keys/ops.bob-2.json \\\n") &&
      length(regexall("\n  --admin-key ", local.coordinator_unit)) == 2
    )
    error_message = "The unit passes exactly one --admin-key per admin key file."
  }

  assert {
    condition     = strcontains(local.coordinator_unit, "  --pool-level 4 \\\n  --admin-key /etc/cohort/admin-keys/alice.json \\\n  --admin-key /etc/cohort/admin-keys/ops.bob-2.json \\\n  --log-json\n")
    error_message = "The --admin-key flags sit inside ExecStart's continued command line, before --log-json."
  }

  assert {
    condition     = contains([for f in local.files : f.content if f.path == "/etc/systemd/system/cohort-coordinator.service"], local.coordinator_unit)
    error_message = "cloud-init installs the rendered unit."
  }

  assert {
    condition = (
      strcontains(local.coordinator_unit, "  --proxy http://10.40.16.10:7070 \\\n  --proxy http://10.40.17.10:7070 \\\n  --proxy http://10.40.16.11:7070 \\\n") &&
      length(regexall("\n  --proxy ", local.coordinator_unit)) == 3 &&
      output.proxy_urls == var.proxy_urls
    )
    error_message = "The unit passes the proxies as --proxy flags in proxy_urls' order: the coordinator's node i (API, metrics, audit log) is proxy_urls[i], and Terraform's node i must be the same node."
  }
}

run "admin_keys_at_least_one" {
  command = plan

  variables {
    admin_api_keys = []
  }

  expect_failures = [var.admin_api_keys]
}

run "admin_key_name_must_be_a_credential_name" {
  command = plan

  variables {
    admin_api_keys = [{ credential = "../alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" }]
  }

  expect_failures = [var.admin_api_keys]
}

run "admin_key_must_be_64_lowercase_hex" {
  command = plan

  variables {
    admin_api_keys = [{ credential = "alice", public_key = "D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A" }]
  }

  expect_failures = [var.admin_api_keys]
}

run "admin_key_names_are_unique" {
  command = plan

  variables {
    admin_api_keys = [
      { credential = "alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" },
      { credential = "alice", public_key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c" },
    ]
  }

  expect_failures = [var.admin_api_keys]
}

# Across regions (examples/multi-region, docs/regions.md): the database as the replicated primary,
# as its read replica in another region, and that replica promoted.

run "database_standalone_is_unchanged" {
  command = apply

  assert {
    condition = (
      output.db_mode == "standalone" &&
      aws_db_instance.this.manage_master_user_password == true &&
      aws_db_instance.this.replicate_source_db == null &&
      length(aws_secretsmanager_secret.db) == 0 &&
      output.db_secret_arn == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-mock"
    )
    error_message = "Without the cross-region variables the database keeps its RDS-managed password and secret."
  }
}

run "database_replicated_primary" {
  command = apply

  variables {
    db_secret_replicas  = { "eu-central-1" = "arn:aws:kms:eu-central-1:111122223333:key/mrk-secret" }
    db_password_version = 3
  }

  assert {
    condition = (
      output.db_mode == "replicated" &&
      aws_db_instance.this.manage_master_user_password == null &&
      aws_db_instance.this.password_wo_version == 3 &&
      aws_db_instance.this.password == null &&
      aws_db_instance.this.backup_retention_period == 14 &&
      aws_secretsmanager_secret_version.db[0].secret_string_wo_version == 3
    )
    error_message = "The replicated primary takes the operator's password through write-only arguments only (RDS makes no read replica of an instance whose password it manages), and keeps its backups."
  }

  assert {
    condition = (
      [for r in aws_secretsmanager_secret.db[0].replica : [r.region, r.kms_key_id]] == [["eu-central-1", "arn:aws:kms:eu-central-1:111122223333:key/mrk-secret"]] &&
      aws_secretsmanager_secret.db[0].kms_key_id == module.database_key.arn &&
      output.db_secret_arn == aws_secretsmanager_secret.db[0].arn
    )
    error_message = "The credentials secret is this module's, under the database key, replicated to the replica's region under that region's key; the coordinators read it."
  }
}

run "database_replicated_primary_needs_its_password" {
  command = plan

  variables {
    db_secret_replicas = { "eu-central-1" = "arn:aws:kms:eu-central-1:111122223333:key/mrk-secret" }
    db_master_password = null
  }

  expect_failures = [var.db_master_password]
}

run "database_read_replica" {
  command = apply

  variables {
    coordinator_count = 0
    db_replica_of = {
      source_db_arn      = "arn:aws:rds:eu-central-1:111122223333:db:cohort-coordinator"
      secret_arn         = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf"
      secret_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/mrk-secret"
    }
  }

  assert {
    condition = (
      output.db_mode == "replica" &&
      output.db_replicate_source_db == "arn:aws:rds:eu-central-1:111122223333:db:cohort-coordinator" &&
      aws_db_instance.this.manage_master_user_password == null && aws_db_instance.this.password_wo_version == null &&
      aws_db_instance.this.kms_key_id == module.database_key.arn &&
      aws_db_instance.this.storage_encrypted && aws_db_instance.this.multi_az && aws_db_instance.this.deletion_protection &&
      length(aws_secretsmanager_secret.db) == 0
    )
    error_message = "A read replica follows its primary by ARN, under this region's database key, with no password of its own (nor user and database: the configuration leaves them to the primary)."
  }

  assert {
    condition = (
      output.db_secret_arn == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf" &&
      strcontains(local.files[0].content, "--secret-id 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf'") &&
      local.db_secret_key == "arn:aws:kms:eu-west-1:111122223333:key/mrk-secret"
    )
    error_message = "The standby coordinators read the replicated secret in their region, decrypting it with the key it was replicated under."
  }

  assert {
    condition     = output.coordinator_count == 0
    error_message = "A standby region's coordinators may be zero."
  }
}

run "database_promoted_replica" {
  command = apply

  variables {
    db_replica_of = {
      source_db_arn      = "arn:aws:rds:eu-central-1:111122223333:db:cohort-coordinator"
      secret_arn         = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf"
      secret_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/mrk-secret"
      promoted           = true
    }
  }

  assert {
    condition = (
      output.db_mode == "promoted" &&
      aws_db_instance.this.replicate_source_db == null &&
      aws_db_instance.this.backup_retention_period == 14 &&
      aws_db_instance.this.skip_final_snapshot == false &&
      output.db_secret_arn == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf"
    )
    error_message = "Promoted, the replica is a standalone instance with backups and a final snapshot, still reading the (promoted) replicated secret."
  }
}

run "database_is_primary_or_replica_not_both" {
  command = plan

  variables {
    db_secret_replicas = { "eu-central-1" = "arn:aws:kms:eu-central-1:111122223333:key/mrk-secret" }
    db_master_password = "mock-only-Passw0rd-not-a-secret"
    db_replica_of = {
      source_db_arn = "arn:aws:rds:eu-central-1:111122223333:db:cohort-coordinator"
      secret_arn    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort/database/master-AbCdEf"
    }
  }

  expect_failures = [var.db_replica_of]
}

run "database_secret_replica_key_must_be_in_its_region" {
  command = plan

  variables {
    db_secret_replicas = { "eu-central-1" = "arn:aws:kms:eu-west-1:111122223333:key/mrk-secret" }
    db_master_password = "mock-only-Passw0rd-not-a-secret"
  }

  expect_failures = [var.db_secret_replicas]
}

run "the_database_log_groups_are_encrypted_and_expire" {
  command = apply

  variables {
    db_master_password = "mock-only-Passw0rd-not-a-secret"
  }

  assert {
    condition = (
      toset(keys(aws_cloudwatch_log_group.database)) == toset(aws_db_instance.this.enabled_cloudwatch_logs_exports) &&
      alltrue([for g in aws_cloudwatch_log_group.database : g.kms_key_id == var.logs_kms_key_arn && g.retention_in_days > 0 && startswith(g.name, "/aws/rds/instance/${aws_db_instance.this.identifier}/")])
    )
    error_message = "Every exported database log has its log group made here, under the logs key, with a retention, named as RDS names it."
  }
}

# The coordinator's own database role (issue 23): the master user only migrates and grants
# (cohort-db-grant.service, before every start), the coordinator connects as cohort_app with an
# IAM authentication token, may use only that role's IAM permission, and reaches no instance
# metadata (so no instance credentials, and not the master user's secret).
run "the_coordinator_connects_as_its_own_role" {
  command = apply

  assert {
    condition = (
      length([for f in local.files : f if f.path == "/etc/systemd/system/cohort-db-grant.service" && strcontains(f.content, "EnvironmentFile=/etc/cohort/db-owner.env") && strcontains(f.content, "  --store-grant cohort_app \\\n  --store-grant-iam \\\n")]) == 1 &&
      length([for f in local.files : f if strcontains(f.path, "refresh")]) == 0 &&
      strcontains(local.coordinator_unit, "Wants=cohort-db-env.service cohort-db-grant.service\n") &&
      strcontains(local.coordinator_unit, "IPAddressDeny=169.254.169.254/32 fd00:ec2::254/128\n") &&
      strcontains(local.coordinator_unit, "EnvironmentFile=/etc/cohort/coordinator.env\n")
    )
    error_message = "The grant runs as the owner before the coordinator, which starts without instance metadata."
  }

  assert {
    condition = alltrue([
      for s in ["generate-db-auth-token", "--username 'cohort_app'", "write /etc/cohort/db-owner.env", "write /etc/cohort/coordinator.env \"$app\""] :
      strcontains(one([for f in local.files : f.content if f.path == "/usr/local/libexec/cohort/db-env"]), s)
    ])
    error_message = "db-env writes the owner's URL for the grant and the coordinator's role's URL with an IAM token for the coordinator."
  }

  assert {
    condition = one([
      for s in jsondecode(module.role.policy_json).Statement : s.Resource if s.Sid == "ConnectAsTheCoordinatorRole"
    ]) == "arn:aws:rds-db:${module.account.region}:${module.account.account_id}:dbuser:${aws_db_instance.this.resource_id}/cohort_app"
    error_message = "The coordinators may connect as cohort_app only."
  }
}
