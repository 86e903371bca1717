terraform {
  required_version = ">= 1.6"

  # No version here (the root's constraint applies); declared so that a root may pass this module
  # a provider configuration by name (providers = { aws = aws.REGION }, examples/multi-region).
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}
