# Where resources stood before the Terraform tree shared its modules (kms_key, service_role,
# instance_group, metric_alarms) and generated repeated resources from tables: with these, a
# deployment made before that plans no replacement, only the moves. They can go once every
# deployment has applied them.

# The resources of main.tf:
moved {
  from = aws_kms_key.storage
  to   = module.storage_key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.storage
  to   = module.storage_key.aws_kms_alias.this
}

moved {
  from = aws_s3_bucket_versioning.blobs
  to   = aws_s3_bucket_versioning.this["blobs"]
}

moved {
  from = aws_s3_bucket_versioning.logs
  to   = aws_s3_bucket_versioning.this["logs"]
}

moved {
  from = aws_s3_bucket_public_access_block.blobs
  to   = aws_s3_bucket_public_access_block.this["blobs"]
}

moved {
  from = aws_s3_bucket_public_access_block.logs
  to   = aws_s3_bucket_public_access_block.this["logs"]
}

moved {
  from = aws_s3_bucket_ownership_controls.blobs
  to   = aws_s3_bucket_ownership_controls.this["blobs"]
}

moved {
  from = aws_s3_bucket_ownership_controls.logs
  to   = aws_s3_bucket_ownership_controls.this["logs"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.blobs
  to   = aws_s3_bucket_lifecycle_configuration.this["blobs"]
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.logs
  to   = aws_s3_bucket_lifecycle_configuration.this["logs"]
}

moved {
  from = aws_s3_bucket_policy.blobs
  to   = aws_s3_bucket_policy.this["blobs"]
}

moved {
  from = aws_s3_bucket_policy.logs
  to   = aws_s3_bucket_policy.this["logs"]
}
