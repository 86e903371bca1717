output "autoscaling_group_name" {
  description = "The Auto Scaling group's name."
  value       = aws_autoscaling_group.this.name
}

output "launch_template_id" {
  description = "The launch template's id."
  value       = aws_launch_template.this.id
}

output "ami_id" {
  description = "The AMI the launch template starts instances from (pinned, or the latest at this apply)."
  value       = aws_launch_template.this.image_id
}
