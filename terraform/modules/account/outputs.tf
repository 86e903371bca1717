output "partition" {
  description = "The AWS partition (aws, aws-cn, aws-us-gov)."
  value       = data.aws_partition.current.partition
}

output "region" {
  description = "The region's name."
  value       = data.aws_region.current.name
}

output "account_id" {
  description = "The account's id."
  value       = data.aws_caller_identity.current.account_id
}

output "account_root" {
  description = "The account root's ARN."
  value       = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}
