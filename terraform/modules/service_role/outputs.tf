output "name" {
  description = "The role's name."
  value       = aws_iam_role.this.name
}

output "arn" {
  description = "The role's ARN."
  value       = aws_iam_role.this.arn
}

output "instance_profile_arn" {
  description = "The instance profile's ARN (null without one)."
  value       = one(aws_iam_instance_profile.this[*].arn)
}

output "policy_json" {
  description = "The role's inline policy document (JSON; null without statements)."
  value       = one(aws_iam_role_policy.this[*].policy)
}
