terraform {
  # 1.10: the S3 backend's use_lockfile; 1.11: modules/coordinator's write-only database
  # password (used across regions only, but any use of the module needs it).
  required_version = ">= 1.11"

  # The provider constraint lives here, in the root, only: the modules under ../../modules use the
  # aws provider without a version of their own (Terraform takes hashicorp/aws for them) and
  # inherit this one.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Configure a remote backend (S3 with locking) for real deployments, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "cohort/cluster.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
}
