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
