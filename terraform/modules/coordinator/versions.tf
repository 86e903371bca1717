terraform {
  # 1.11: the replicated database's password is an ephemeral variable written through write-only
  # arguments (password_wo, secret_string_wo).
  required_version = ">= 1.11"

  # No version here (the root's constraint applies); declared so that a root may pass this module
  # a provider configuration by name (providers = { aws = aws.REGION }, examples/multi-region).
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}
