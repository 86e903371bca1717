# The client API: an application load balancer terminating TLS (certificate_arn) and forwarding
# to the coordinators, health-checked on /readyz, with access logs and a WAF in front.

resource "aws_lb" "client_api" {
  name                       = "${var.name}-client-api"
  load_balancer_type         = "application"
  internal                   = var.load_balancer_internal
  subnets                    = var.load_balancer_internal ? var.app_subnet_ids : var.public_subnet_ids
  security_groups            = [var.security_group_ids.load_balancer]
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  idle_timeout               = 60

  access_logs {
    bucket  = var.log_bucket_name
    prefix  = "lb"
    enabled = true
  }

  tags = merge(var.tags, { Name = "${var.name}-client-api" })
}

# Plain HTTP to the coordinators (they serve HTTP only): TLS ends at the listener, and this hop
# stays inside the VPC, allowed only from the load balancer's security group.
resource "aws_lb_target_group" "coordinator" {
  name                 = "${var.name}-coordinator"
  vpc_id               = var.vpc_id
  port                 = var.coordinator_port
  protocol             = "HTTP"
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.client_api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.coordinator.arn
  }

  tags = var.tags
}

# --- WAF --------------------------------------------------------------------------------------

# Known-bad inputs (including Log4j probes), Amazon's IP reputation and anonymous-IP lists and a
# per-IP rate limit. No generic body rules: signing requests carry arbitrary payloads that such rules would
# misjudge; what a request may do is decided by the enclaves' approver-stamp checks.
resource "aws_wafv2_web_acl" "client_api" {
  name        = "${var.name}-client-api"
  description = "${var.name} client API"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "known-bad-inputs"
    priority = 10
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "ip-reputation"
    priority = 20
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  # Tor exits and anonymising proxies are blocked; hosting-provider addresses are only counted,
  # since custody backends commonly call from cloud instances.
  rule {
    name     = "anonymous-ip"
    priority = 30
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"

        rule_action_override {
          name = "HostingProviderIPList"
          action_to_use {
            count {}
          }
        }
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit"
    priority = 40
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-client-api"
    sampled_requests_enabled   = true
  }

  tags = var.tags
}

resource "aws_wafv2_web_acl_association" "client_api" {
  resource_arn = aws_lb.client_api.arn
  web_acl_arn  = aws_wafv2_web_acl.client_api.arn
}

resource "aws_wafv2_web_acl_logging_configuration" "client_api" {
  resource_arn            = aws_wafv2_web_acl.client_api.arn
  log_destination_configs = [aws_cloudwatch_log_group.this["waf"].arn]

  # Clients' credentials never reach the logs.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}

# Prometheus metrics are for the CloudWatch agent on each coordinator, not for clients.
resource "aws_lb_listener_rule" "hide_metrics" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  condition {
    path_pattern {
      values = ["/metrics"]
    }
  }

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      status_code  = "404"
      message_body = "not found"
    }
  }

  tags = var.tags
}
