# What one region keeps in the next region of the ring (a -> b -> c -> a): the replicas of its
# nodes' sealed blobs and KMS keys, so that losing the region loses neither; and the VPC peering
# of the two, so that the coordinators reach every proxy. With three regions the ring peers every
# pair once. Both regions' ./region modules are inputs; neither refers to this one.

# --- Sealed blobs ------------------------------------------------------------------------------

# The starting region's own node prefixes go to the next region's own blob bucket, re-encrypted
# under its storage key. A region without nodes replicates nothing.
module "blob_replication" {
  source = "../../../modules/blob_replication"
  count  = length(var.nodes) > 0 ? 1 : 0

  name                    = var.name
  source_bucket_name      = var.from.blob_bucket_name
  source_bucket_arn       = var.from.blob_bucket_arn
  source_kms_key_arn      = var.from.storage_kms_key_arn
  destination_bucket_arn  = var.to.blob_bucket_arn
  destination_kms_key_arn = var.to.storage_kms_key_arn
  prefixes                = [for i in sort(keys(var.nodes)) : "node-${i}/"]
  tags                    = var.tags
}

# --- The node keys' replicas ---------------------------------------------------------------------

# Same key material as the node's key (a ciphertext of one opens with the other) under the very
# same policy: only an enclave of an allowed image, on an instance with the node's parent role
# (IAM is global; with parent_pcr3 pinned), may use it, and with the enclave's encryption context
# only. docs/regions.md says what the enclave still lacks to use a replica.
resource "aws_kms_replica_key" "node" {
  provider = aws.next
  for_each = var.nodes

  description             = "${var.name} node ${each.key}: replica of the enclave sealing key (attestation-gated)"
  primary_key_arn         = each.value.kms_key_arn
  policy                  = each.value.kms_key_policy
  deletion_window_in_days = 30

  tags = merge(var.tags, { Name = "${var.name}-node-${each.key}" })
}

resource "aws_kms_alias" "node_replica" {
  provider = aws.next
  for_each = var.nodes

  name          = "alias/${var.name}-node-${each.key}"
  target_key_id = aws_kms_replica_key.node[each.key].key_id
}

# --- VPC peering -------------------------------------------------------------------------------

# The coordinators call every node's proxy (nodes never call each other: the coordinators relay
# their sessions), so the regions' application subnets need a path; the security groups (network
# module, peer_*_cidrs) open only the proxy port, only between application subnets. A peering
# across regions cannot be accepted by its requester: the next region accepts it.
resource "aws_vpc_peering_connection" "this" {
  vpc_id      = var.from.vpc_id
  peer_vpc_id = var.to.vpc_id
  peer_region = var.next_region

  tags = merge(var.tags, { Name = "${var.name}-to-${var.next_name}" })
}

resource "aws_vpc_peering_connection_accepter" "this" {
  provider = aws.next

  vpc_peering_connection_id = aws_vpc_peering_connection.this.id
  auto_accept               = true

  tags = merge(var.tags, { Name = "${var.next_name}-from-${var.name}" })
}

# Only the application subnets route to the peer: the database subnets keep their VPC-local
# route alone, and the public subnets theirs to the internet.
resource "aws_route" "to_next" {
  for_each = var.from.app_route_table_ids

  route_table_id            = each.value
  destination_cidr_block    = var.to.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection_accepter.this.id
}

resource "aws_route" "from_next" {
  provider = aws.next
  for_each = var.to.app_route_table_ids

  route_table_id            = each.value
  destination_cidr_block    = var.from.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection_accepter.this.id
}
