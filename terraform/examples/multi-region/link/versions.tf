terraform {
  required_version = ">= 1.11"

  # Two configurations of the aws provider, no version (the root's constraint applies): `aws`,
  # the region this link starts from, and `aws.next`, the next region of the ring
  # (a -> b -> c -> a), which keeps the replicas and accepts the peering.
  required_providers {
    aws = {
      source                = "hashicorp/aws"
      configuration_aliases = [aws.next]
    }
  }
}
