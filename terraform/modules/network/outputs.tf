output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "The VPC's IPv4 range."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "The availability zones, in the order given."
  value       = var.azs
}

output "public_subnet_ids" {
  description = "Public subnets (NAT gateways, internet-facing load balancer), in AZ order."
  value       = [for az in var.azs : aws_subnet.public[az].id]
}

output "app_subnet_ids" {
  description = "Application subnets (parents, coordinators, interface endpoints), in AZ order."
  value       = [for az in var.azs : aws_subnet.app[az].id]
}

output "app_subnet_ids_by_az" {
  description = "Application subnet of each availability zone."
  value       = { for az, s in aws_subnet.app : az => s.id }
}

output "app_subnet_cidrs" {
  description = "IPv4 ranges of the application subnets, in AZ order (another region's peer_proxy_cidrs or peer_coordinator_cidrs)."
  value       = [for az in var.azs : aws_subnet.app[az].cidr_block]
}

output "app_route_table_ids" {
  description = "Route table of each AZ's application subnet, by AZ (routes to a peered VPC go here)."
  value       = { for az, rt in aws_route_table.app : az => rt.id }
}

output "data_subnet_ids" {
  description = "Database subnets, in AZ order."
  value       = [for az in var.azs : aws_subnet.data[az].id]
}

output "security_group_ids" {
  description = "Security group of each tier."
  value       = local.groups
}

output "logs_kms_key_arn" {
  description = "KMS key for the cluster's CloudWatch log groups (named /NAME/... or aws-waf-logs-NAME...)."
  value       = module.logs_key.arn
}

output "session_log_group_arn" {
  description = "CloudWatch log group of Session Manager sessions (/NAME/sessions): every instance role may write to it."
  value       = aws_cloudwatch_log_group.sessions.arn
}

output "session_kms_key_arn" {
  description = "The KMS key Session Manager encrypts session data under: every instance role may decrypt with it."
  value       = module.sessions_key.arn
}

output "session_preferences" {
  description = "The Session Manager preferences document this module manages (name and decoded content) and its log group's key, or null (session_preferences = false)."
  value = !var.session_preferences ? null : {
    name                  = aws_ssm_document.session_preferences[0].name
    content               = jsondecode(aws_ssm_document.session_preferences[0].content)
    log_group_kms_key_arn = aws_cloudwatch_log_group.sessions.kms_key_id
  }
}

output "flow_log_group_name" {
  description = "CloudWatch log group of the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "proxy_port" {
  description = "Port of the parent proxies' HTTP API, as the security groups open it: pass it to every node module."
  value       = var.proxy_port
}
