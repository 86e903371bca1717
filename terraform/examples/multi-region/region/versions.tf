terraform {
  required_version = ">= 1.11"

  # No version here (the root's constraint applies): the root passes this region's provider.
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}
