# The AWS provider's mocked values shared by every `terraform test` suite (mock_provider "aws"
# { source = "../../tests/mocks" }): fixed region, account, partition, AMI and the attributes the
# configuration reads back from resources (ARNs, addresses), so that policies and URLs come out
# the same in every run. Nothing reaches AWS.

mock_data "aws_region" {
  defaults = { name = "eu-west-1" }
}
mock_data "aws_caller_identity" {
  defaults = { account_id = "111122223333" }
}
mock_data "aws_partition" {
  defaults = { partition = "aws" }
}
mock_data "aws_ssm_parameter" {
  defaults = { insecure_value = "ami-0123456789abcdef0" }
}
mock_data "aws_ec2_instance_type" {
  defaults = { nitro_enclaves_support = "supported", default_vcpus = 4 }
}
mock_data "aws_elb_service_account" {
  defaults = { arn = "arn:aws:iam::156460612806:root" }
}
mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::111122223333:role/mock-parent" }
}
mock_resource "aws_kms_key" {
  defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000" }
}
mock_resource "aws_network_interface" {
  defaults = { private_ip = "10.40.16.10" }
}
mock_resource "aws_db_instance" {
  defaults = {
    address = "cohort-coordinator.mock.eu-west-1.rds.amazonaws.com"
    master_user_secret = [{
      secret_arn    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!db-mock"
      kms_key_id    = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
      secret_status = "active"
    }]
  }
}
mock_resource "aws_lb_target_group" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/cohort-coordinator/0123456789abcdef"
    arn_suffix = "targetgroup/cohort-coordinator/0123456789abcdef"
  }
}
mock_resource "aws_wafv2_web_acl" {
  defaults = { arn = "arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/cohort-client-api/mock" }
}
mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:mock" }
}
mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:eu-west-1:111122223333:cohort-alarms" }
}
mock_resource "aws_iam_instance_profile" {
  defaults = { arn = "arn:aws:iam::111122223333:instance-profile/mock" }
}
mock_resource "aws_s3_bucket" {
  defaults = { arn = "arn:aws:s3:::mock" }
}
mock_resource "aws_launch_template" {
  defaults = { id = "lt-0123456789abcdef0", latest_version = 1 }
}
mock_resource "aws_lb_listener" {
  defaults = { arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/cohort-client-api/0123456789abcdef/0123456789abcdef" }
}
mock_resource "aws_lb" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/cohort-client-api/0123456789abcdef"
    arn_suffix = "app/cohort-client-api/0123456789abcdef"
    dns_name   = "cohort-client-api-123.eu-west-1.elb.amazonaws.com"
  }
}
