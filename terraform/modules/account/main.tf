# Where the configuration runs: the AWS partition, region and account of the provider's
# credentials, and the account root's ARN (the principal of "this account" in resource policies).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
