# The region's trail (issue 23) and the storage key's limits: what an auditor relies on — every
# management event and the sealed-blob bucket's object events recorded, validated, encrypted
# under the trail's own key, kept under Object Lock, copied to CloudWatch Logs — and the storage
# key usable only through S3, never through a grant. Applied against the mocked AWS provider
# (nothing reaches AWS). Run by scripts/terraform-check.sh.

mock_provider "aws" {
  source = "../../tests/mocks"
}

variables {
  name                = "cohort"
  admin_principal_arn = "arn:aws:iam::111122223333:role/cohort-deployer"
}

run "trail" {
  command = apply

  assert {
    condition = (
      aws_cloudtrail.this.enable_log_file_validation &&
      aws_cloudtrail.this.kms_key_id == module.trail_key.arn &&
      aws_cloudtrail.this.s3_bucket_name == aws_s3_bucket.trail.id &&
      aws_cloudtrail.this.cloud_watch_logs_group_arn == "${aws_cloudwatch_log_group.trail.arn}:*"
    )
    error_message = "The trail validates its log files, encrypts them under its own key, and writes to its bucket and log group."
  }

  assert {
    condition = (
      anytrue([for f in aws_cloudtrail.this.advanced_event_selector[0].field_selector : f.field == "eventCategory" && tolist(f.equals) == tolist(["Management"])]) &&
      length(aws_cloudtrail.this.advanced_event_selector[0].field_selector) == 1 &&
      anytrue([for f in aws_cloudtrail.this.advanced_event_selector[1].field_selector : f.field == "eventCategory" && tolist(f.equals) == tolist(["Data"])]) &&
      anytrue([for f in aws_cloudtrail.this.advanced_event_selector[1].field_selector : f.field == "resources.ARN" && tolist(f.starts_with) == tolist(["${aws_s3_bucket.blobs.arn}/"])])
    )
    error_message = "The trail records every management event (every KMS call) and the sealed-blob bucket's object events."
  }

  assert {
    condition = (
      aws_s3_bucket.trail.object_lock_enabled &&
      aws_s3_bucket_object_lock_configuration.trail.rule[0].default_retention[0].mode == "COMPLIANCE" &&
      aws_s3_bucket_object_lock_configuration.trail.rule[0].default_retention[0].days == 365
    )
    error_message = "The trail's log files are under Object Lock, COMPLIANCE for 365 days by default."
  }

  assert {
    condition = (
      aws_s3_bucket_object_lock_configuration.blobs.object_lock_enabled == "Enabled" &&
      aws_s3_bucket_object_lock_configuration.blobs.bucket == aws_s3_bucket.blobs.id &&
      aws_s3_bucket_object_lock_configuration.blobs.rule[0].default_retention[0].mode == "COMPLIANCE" &&
      aws_s3_bucket_object_lock_configuration.blobs.rule[0].default_retention[0].days == 365
    )
    error_message = "Every sealed-blob version is under Object Lock, COMPLIANCE for 365 days by default: no one in the account can destroy a node's shares."
  }

  assert {
    condition = (
      contains([for s in jsondecode(aws_s3_bucket_policy.this["trail"].policy).Statement : s.Sid], "CloudTrailWrite") &&
      contains([for s in jsondecode(aws_s3_bucket_policy.this["trail"].policy).Statement : s.Sid], "DenyInsecureTransport")
    )
    error_message = "The trail's bucket takes CloudTrail's deliveries, over TLS only."
  }

  assert {
    condition = [for s in jsondecode(module.storage_key.policy).Statement : s.Sid] == [
      "EnableIamPolicies", "KeyAdministration", "DenyUseOutsideS3", "DenyGrants",
    ]
    error_message = "The storage key is usable only through S3 and never through a grant, whatever IAM allows."
  }

  assert {
    condition     = jsondecode(module.storage_key.policy).Statement[2].Condition.StringNotEquals["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
    error_message = "Through S3 in this region only."
  }
}

run "blob_lock_cannot_outlast_the_versions_it_keeps" {
  command = plan

  variables {
    blob_lock_days       = 400
    blob_noncurrent_days = 365
  }

  expect_failures = [var.blob_lock_days]
}

run "blob_lock_mode_is_checked" {
  command = plan

  variables {
    blob_lock_mode = "NONE"
  }

  expect_failures = [var.blob_lock_mode]
}

run "trail_lock_mode_is_checked" {
  command = plan

  variables {
    trail_lock_mode = "LEGAL_HOLD"
  }

  expect_failures = [var.trail_lock_mode]
}

run "a_region_opened_before_august_2022_takes_load_balancer_logs_from_its_elb_account" {
  command = apply

  assert {
    condition     = contains([for s in jsondecode(aws_s3_bucket_policy.this["logs"].policy).Statement : s.Sid], "LoadBalancerAccessLogsLegacy")
    error_message = "eu-west-1 delivers load balancer logs from its regional ELB account."
  }
}

run "a_newer_region_needs_no_hand_edit" {
  command = apply

  override_data {
    target = module.account.data.aws_region.current
    values = { name = "eu-south-2" }
  }

  assert {
    condition = (
      length(data.aws_elb_service_account.this) == 0 &&
      [for s in jsondecode(aws_s3_bucket_policy.this["logs"].policy).Statement : s.Sid] == ["DenyInsecureTransport", "S3ServerAccessLogs", "LoadBalancerAccessLogs"]
    )
    error_message = "A region opened after August 2022 has no ELB account: the logs bucket takes the log delivery service's deliveries only, with no data source to fail."
  }
}
