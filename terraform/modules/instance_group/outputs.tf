output "autoscaling_group_name" {
  description = "The Auto Scaling group's name."
  value       = aws_autoscaling_group.this.name
}

output "launch_template_id" {
  description = "The launch template's id."
  value       = aws_launch_template.this.id
}
