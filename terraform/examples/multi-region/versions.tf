terraform {
  # 1.11: the replicated database's password is an ephemeral variable written through write-only
  # arguments (modules/coordinator); the S3 backend's use_lockfile needs 1.10.
  required_version = ">= 1.11"

  # The provider constraint lives here, in the root, only (as in examples/cluster).
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Configure a remote backend (S3 with locking) for real deployments, in a fourth region (or a
  # bucket replicated to one), so that the state survives losing any region of the cluster, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "cohort/multi-region.tfstate"
  #   region       = "eu-north-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

# One configuration per region slot. Terraform cannot make providers from a list, so the three
# slots are fixed: a, the primary region (the database's primary and the active coordinators);
# b, the standby region (the database's read replica and the standby coordinators); c, the third
# node region. Every module call names its slot's provider.
provider "aws" {
  alias  = "a"
  region = var.regions["a"].region
}

provider "aws" {
  alias  = "b"
  region = var.regions["b"].region
}

provider "aws" {
  alias  = "c"
  region = var.regions["c"].region
}
