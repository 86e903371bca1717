output "blob_bucket_name" {
  description = "Sealed-blob bucket; node I keeps its blobs under node-I/."
  value       = aws_s3_bucket.blobs.bucket
}

output "blob_bucket_arn" {
  description = "ARN of the sealed-blob bucket."
  value       = aws_s3_bucket.blobs.arn
}

output "storage_kms_key_arn" {
  description = "KMS key of the sealed-blob bucket's SSE-KMS."
  value       = module.storage_key.arn
}

output "log_bucket_name" {
  description = "Access-log bucket (load balancer logs go under lb/)."
  value       = aws_s3_bucket.logs.bucket
}

output "trail_arn" {
  description = "The region's CloudTrail trail (management events and the sealed-blob bucket's object events)."
  value       = aws_cloudtrail.this.arn
}

output "trail_bucket_name" {
  description = "Bucket of the trail's log files (Object Lock on)."
  value       = aws_s3_bucket.trail.bucket
}

output "trail_kms_key_arn" {
  description = "KMS key of the trail's log files."
  value       = module.trail_key.arn
}
