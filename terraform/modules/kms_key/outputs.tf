output "arn" {
  description = "The key's ARN."
  value       = aws_kms_key.this.arn
}

output "key_id" {
  description = "The key's id."
  value       = aws_kms_key.this.key_id
}

output "policy" {
  description = "The key policy, as JSON."
  value       = aws_kms_key.this.policy
}

output "multi_region" {
  description = "Whether the key is a multi-Region primary key."
  value       = aws_kms_key.this.multi_region
}
