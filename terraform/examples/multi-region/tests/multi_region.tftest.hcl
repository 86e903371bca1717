# Applies the multi-region example against mocked AWS providers, one per region slot (nothing
# reaches AWS), and checks the layout that lets the cluster survive losing a region: one node per
# region, any region's loss leaving at least the threshold, every node's sealed blobs replicated
# to another region, every node key a multi-Region key with its replica (same policy) in another
# region, the database's cross-region read replica and the replicated credentials secret, the
# peering ring and its narrow rules; then the failover switch, a two-region node layout, and the
# placements and settings the variables refuse. Run by scripts/terraform-check.sh.

# Region a: the shared mocked values (eu-west-1), plus the ARNs this example reads back.
mock_provider "aws" {
  alias  = "a"
  source = "../../tests/mocks"

  mock_resource "aws_db_instance" {
    defaults = {
      arn     = "arn:aws:rds:eu-west-1:111122223333:db:cohort-a-coordinator"
      address = "cohort-a-coordinator.mock.eu-west-1.rds.amazonaws.com"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cohort-a/database/master-AbCdEf" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-eu-west-1" }
  }
  mock_resource "aws_kms_replica_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/mrk-00000000000000000000000000000003" }
  }
}

mock_provider "aws" {
  alias  = "b"
  source = "../../tests/mocks"

  mock_data "aws_region" {
    defaults = { name = "eu-central-1" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-central-1:111122223333:key/mrk-00000000000000000000000000000002" }
  }
  mock_resource "aws_kms_replica_key" {
    defaults = { arn = "arn:aws:kms:eu-central-1:111122223333:key/mrk-00000000000000000000000000000001" }
  }
  mock_resource "aws_network_interface" {
    defaults = { private_ip = "10.41.16.10" }
  }
  mock_resource "aws_db_instance" {
    defaults = {
      arn     = "arn:aws:rds:eu-central-1:111122223333:db:cohort-b-coordinator"
      address = "cohort-b-coordinator.mock.eu-central-1.rds.amazonaws.com"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-eu-central-1" }
  }
}

mock_provider "aws" {
  alias  = "c"
  source = "../../tests/mocks"

  mock_data "aws_region" {
    defaults = { name = "eu-north-1" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-north-1:111122223333:key/mrk-00000000000000000000000000000003" }
  }
  mock_resource "aws_kms_replica_key" {
    defaults = { arn = "arn:aws:kms:eu-north-1:111122223333:key/mrk-00000000000000000000000000000002" }
  }
  mock_resource "aws_network_interface" {
    defaults = { private_ip = "10.42.16.10" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock-eu-north-1" }
  }
}

variables {
  regions = {
    a = {
      region          = "eu-west-1"
      azs             = ["eu-west-1a", "eu-west-1b"]
      vpc_cidr        = "10.40.0.0/16"
      artifact_bucket = "artifacts-eu-west-1"
      certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock"
    }
    b = {
      region          = "eu-central-1"
      azs             = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
      vpc_cidr        = "10.41.0.0/16"
      artifact_bucket = "artifacts-eu-central-1"
      certificate_arn = "arn:aws:acm:eu-central-1:111122223333:certificate/mock"
    }
    c = {
      region          = "eu-north-1"
      azs             = ["eu-north-1a", "eu-north-1b"]
      vpc_cidr        = "10.42.0.0/16"
      artifact_bucket = "artifacts-eu-north-1"
    }
  }
  measurements_files     = ["../cluster/measurements.example.json"]
  eif_key                = "cohort.eif"
  proxy_binary_key       = "cohort-parent-proxy"
  coordinator_binary_key = "cohort-coordinator"
  db_ca_bundle_key       = "rds-global-bundle.pem"
  client_cidrs           = ["203.0.113.0/24"]
  admin_principal_arn    = "arn:aws:iam::111122223333:role/cohort-deployer"
  db_master_password     = "mock-only-Passw0rd-not-a-secret"
  # `cohort kms pcr3 --role-arn arn:aws:iam::111122223333:role/mock-parent` (the mocked role), as in
  # examples/cluster, so that node 0's policy compares with its CLI policy file.
  parent_pcr3 = { "0" = "391dc275119dab28f7c0ff33ac135cb618f1ae7e183991fed433748a562a2a6ee036e67082847d43b7d26535cc594ed1" }
  # RFC 8032's first Ed25519 test vector's public key.
  admin_api_keys = [{ credential = "alice", public_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" }]
}

run "one_node_per_region" {
  command = apply

  assert {
    condition     = [for i in ["0", "1", "2"] : [output.nodes[i].slot, output.nodes[i].region]] == [["a", "eu-west-1"], ["b", "eu-central-1"], ["c", "eu-north-1"]]
    error_message = "Three nodes, threshold 2: node 0 in region a, node 1 in b, node 2 in c."
  }

  assert {
    condition     = [for i in ["0", "1", "2"] : output.nodes[i].az] == ["eu-west-1a", "eu-central-1a", "eu-north-1a"]
    error_message = "Each node sits in an availability zone of its own region."
  }

  assert {
    condition = alltrue([
      for s, loss in output.region_loss : loss.can_sign && length(loss.nodes_left) >= var.threshold && !contains([for i in loss.nodes_left : output.nodes[i].slot], s)
    ]) && length(output.region_loss) == 3
    error_message = "Losing any one of the three regions leaves at least threshold nodes, all outside it."
  }

  assert {
    condition     = { for s, loss in output.region_loss : s => loss.nodes_left } == { a = ["1", "2"], b = ["0", "2"], c = ["0", "1"] }
    error_message = "The survivors of each region's loss are the other two regions' nodes."
  }

  # Sealed blobs: each region's bucket replicates its own nodes' prefixes to the next region's
  # bucket, re-encrypted under that region's storage key.
  assert {
    condition = alltrue([
      for s, next in { a = "b", b = "c", c = "a" } :
      output.blob_replication[s].replication != null &&
      output.blob_replication[s].replication.destination_region == var.regions[next].region &&
      output.blob_replication[s].replication.destination_region != var.regions[s].region &&
      output.blob_replication[s].replication.destination_bucket_arn != output.blob_replication[next].replication.destination_bucket_arn &&
      split(":", output.blob_replication[s].replication.destination_kms_key_arn)[3] == var.regions[next].region
    ])
    error_message = "Every region's blobs are replicated to a bucket in the next region, under a KMS key of that region."
  }

  assert {
    condition = (
      module.link_a_b.blob_replication.destination_bucket_arn == module.region_b.blob_bucket_arn &&
      module.link_b_c.blob_replication.destination_bucket_arn == module.region_c.blob_bucket_arn &&
      module.link_c_a.blob_replication.destination_bucket_arn == module.region_a.blob_bucket_arn &&
      module.link_a_b.blob_replication.destination_kms_key_arn == module.region_b.storage_kms_key_arn &&
      module.link_c_a.blob_replication.destination_kms_key_arn == module.region_a.storage_kms_key_arn
    )
    error_message = "The replication destination is the next region's own sealed-blob bucket and storage key (a ring a -> b -> c -> a)."
  }

  assert {
    condition     = [for s in ["a", "b", "c"] : output.blob_replication[s].replication.prefixes] == [["node-0/"], ["node-1/"], ["node-2/"]]
    error_message = "A region replicates exactly its own nodes' prefixes (never the replicas it holds for another region)."
  }

  # Node keys: multi-Region primaries, each with a replica in another region under the same policy.
  assert {
    condition = alltrue([
      for i, n in output.nodes :
      n.kms_key_multi_region &&
      n.kms_replica_region != n.region &&
      split(":", n.kms_replica_key_arn)[3] == n.kms_replica_region &&
      n.kms_replica_primary == n.kms_key_arn &&
      jsondecode(output.kms_replica_key_policies[i]) == jsondecode(output.kms_key_policies[i])
    ])
    error_message = "Every node key is a multi-Region key whose replica lives in another region with the same attestation-gated policy."
  }

  assert {
    condition = jsondecode(output.kms_key_policies["0"]) == merge(
      jsondecode(file("../cluster/tests/cli-policy-node-0.json")),
      {
        Statement = concat(
          [merge(jsondecode(file("../cluster/tests/cli-policy-node-0.json")).Statement[0], {
            Action = concat(jsondecode(file("../cluster/tests/cli-policy-node-0.json")).Statement[0].Action, ["kms:ReplicateKey"])
          })],
          slice(jsondecode(file("../cluster/tests/cli-policy-node-0.json")).Statement, 1, length(jsondecode(file("../cluster/tests/cli-policy-node-0.json")).Statement)),
          [{
            Sid       = "DenyUnplannedReplicas"
            Effect    = "Deny"
            Principal = { AWS = "*" }
            Action    = "kms:ReplicateKey"
            Resource  = "*"
            Condition = { StringNotEquals = { "kms:ReplicaRegion" = ["eu-central-1"] } }
          }],
        )
      },
    )
    error_message = "A node key's policy is `cohort kms policy`'s (examples/cluster/tests/cli-policy-node-0.json) with kms:ReplicateKey for the administrator into the next region of the ring only (node 0 lives in eu-west-1, its replica in eu-central-1), and nothing else."
  }

  assert {
    condition = (
      contains(module.monitoring_b.kms_key_changes_rule.pattern.detail.resources.ARN, module.link_a_b.kms_replicas["0"].arn) &&
      contains(module.monitoring_a.kms_key_changes_rule.pattern.detail.resources.ARN, output.nodes["0"].kms_key_arn)
    )
    error_message = "A node key pages in its region, and its replica in the replica's."
  }

  assert {
    condition = output.genesis_prepare_args == [
      "--kms-key=0=arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000",
      "--kms-key=1=arn:aws:kms:eu-central-1:111122223333:key/mrk-00000000000000000000000000000002",
      "--kms-key=2=arn:aws:kms:eu-north-1:111122223333:key/mrk-00000000000000000000000000000003",
      "--pcr3=0=${var.parent_pcr3["0"]}",
    ]
    error_message = "genesis_prepare_args names each node's home-region key (the roster pins that ARN)."
  }

  # The database: a primary in a, replicated; a cross-region read replica in b following it; the
  # credentials secret replicated to b, where the standby coordinators read it.
  assert {
    condition = (
      output.database.primary.mode == "replicated" &&
      output.database.replica.mode == "replica" &&
      output.database.replica.source == output.database.primary.arn &&
      output.database.primary.region != output.database.replica.region &&
      split(":", output.database.replica.source)[3] == var.regions["a"].region
    )
    error_message = "The database has a read replica in region b that follows region a's primary (by ARN, across regions)."
  }

  assert {
    condition = (
      output.database.primary.secret_replicated == tolist(["eu-central-1"]) &&
      output.database.replica.secret_arn == "arn:aws:secretsmanager:eu-central-1:111122223333:secret:cohort-a/database/master-AbCdEf"
    )
    error_message = "The credentials secret is replicated to region b, and region b's coordinators read that replica."
  }

  assert {
    condition     = module.coordinator_a.coordinator_count == 2 && module.coordinator_b.coordinator_count == 0
    error_message = "Region a's coordinators run; region b's wait at zero for a failover."
  }

  # Network: a peering per pair of regions, application subnets routed to the peer only, and
  # the proxy port opened to exactly the coordinator regions' application subnets.
  assert {
    condition = alltrue([
      for pair, next in { a_b = "b", b_c = "c", c_a = "a" } :
      toset(values(output.peering[pair].routes.to_next)) == toset([var.regions[next].vpc_cidr])
    ])
    error_message = "Each region's application route tables reach the next region's VPC through their peering (three peerings: every pair)."
  }

  assert {
    condition = (
      local.peer_proxy_cidrs.a == tolist(concat(module.region_b.app_subnet_cidrs, module.region_c.app_subnet_cidrs)) &&
      local.peer_proxy_cidrs.b == tolist(concat(module.region_a.app_subnet_cidrs, module.region_c.app_subnet_cidrs)) &&
      length(local.peer_proxy_cidrs.c) == 0 &&
      local.peer_coordinator_cidrs.a == tolist(module.region_b.app_subnet_cidrs) &&
      local.peer_coordinator_cidrs.b == tolist(module.region_a.app_subnet_cidrs) &&
      local.peer_coordinator_cidrs.c == tolist(concat(module.region_a.app_subnet_cidrs, module.region_b.app_subnet_cidrs))
    )
    error_message = "Coordinators (a, b) may call the other regions' proxies; each region's proxies admit the other coordinator regions' application subnets; nothing else crosses."
  }

  assert {
    condition = (
      tolist(local.app_cidrs.a) == tolist(module.region_a.app_subnet_cidrs) &&
      tolist(local.app_cidrs.b) == tolist(module.region_b.app_subnet_cidrs) &&
      tolist(local.app_cidrs.c) == tolist(module.region_c.app_subnet_cidrs)
    )
    error_message = "The application subnet ranges the root computes (so that no region refers to another) are those modules/network makes."
  }

  assert {
    condition     = length(module.region_b.app_subnet_cidrs) == 3 && !contains(flatten(values(local.peer_coordinator_cidrs)), "0.0.0.0/0")
    error_message = "Peer rules name application subnets, never the internet."
  }

  assert {
    condition     = local.proxy_urls == ["http://10.40.16.10:7070", "http://10.41.16.10:7070", "http://10.42.16.10:7070"]
    error_message = "Both coordinator regions get every node's proxy, in node order."
  }
}

run "failed_over_to_region_b" {
  command = apply

  variables {
    failed_over = true
  }

  assert {
    condition = (
      output.database.replica.mode == "promoted" &&
      output.database.replica.source == null &&
      output.database.replica.secret_arn == "arn:aws:secretsmanager:eu-central-1:111122223333:secret:cohort-a/database/master-AbCdEf" &&
      length(output.database.primary.secret_replicated) == 0
    )
    error_message = "After the failover region b's database is standalone (promoted) and keeps reading the promoted secret; region a's secret no longer replicates to it."
  }

  assert {
    condition     = module.coordinator_a.coordinator_count == 0 && module.coordinator_b.coordinator_count == 2 && output.active_coordinator_region == "eu-central-1"
    error_message = "Region b's coordinators run, region a's are stopped."
  }
}

run "nodes_over_two_regions" {
  command = apply

  # 2-of-4 over regions a and b (two nodes each), region c without nodes.
  variables {
    node_count   = 4
    node_regions = { "2" = "a", "3" = "b" }
  }

  assert {
    condition     = { for i, n in output.nodes : i => n.slot } == { "0" = "a", "1" = "b", "2" = "a", "3" = "b" }
    error_message = "node_regions overrides the round-robin placement."
  }

  assert {
    condition     = alltrue([for s, loss in output.region_loss : loss.can_sign]) && output.region_loss.a.nodes_left == ["1", "3"]
    error_message = "Two nodes in each of two regions still sign 2-of-4 after losing either."
  }

  assert {
    condition = (
      output.blob_replication.a.replication.prefixes == ["node-0/", "node-2/"] &&
      output.blob_replication.c.replication == null &&
      length(local.peer_coordinator_cidrs.c) == 0 && local.peer_proxy_cidrs.a == tolist(module.region_b.app_subnet_cidrs)
    )
    error_message = "A region replicates all its nodes' prefixes; a region without nodes replicates nothing and admits no coordinator."
  }

  assert {
    condition     = [for i in ["0", "2"] : output.nodes[i].az] == ["eu-west-1a", "eu-west-1b"]
    error_message = "Nodes of one region spread over its availability zones."
  }
}

run "placement_that_loses_quorum_with_a_region_is_refused" {
  command = plan

  # Nodes 0 and 1 in region a: losing it leaves node 2 alone, below the threshold 2.
  variables {
    node_regions = { "1" = "a" }
  }

  expect_failures = [var.threshold]
}

run "two_slots_in_one_region_are_refused" {
  command = plan

  variables {
    regions = {
      a = { region = "eu-west-1", azs = ["eu-west-1a", "eu-west-1b"], vpc_cidr = "10.40.0.0/16", artifact_bucket = "a", certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock" }
      b = { region = "eu-west-1", azs = ["eu-west-1a", "eu-west-1c"], vpc_cidr = "10.41.0.0/16", artifact_bucket = "b", certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock" }
      c = { region = "eu-north-1", azs = ["eu-north-1a", "eu-north-1b"], vpc_cidr = "10.42.0.0/16", artifact_bucket = "c" }
    }
  }

  expect_failures = [var.regions]
}

run "overlapping_vpc_ranges_are_refused" {
  command = plan

  variables {
    regions = {
      a = { region = "eu-west-1", azs = ["eu-west-1a", "eu-west-1b"], vpc_cidr = "10.40.0.0/16", artifact_bucket = "a", certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock" }
      b = { region = "eu-central-1", azs = ["eu-central-1a", "eu-central-1b"], vpc_cidr = "10.40.128.0/17", artifact_bucket = "b", certificate_arn = "arn:aws:acm:eu-central-1:111122223333:certificate/mock" }
      c = { region = "eu-north-1", azs = ["eu-north-1a", "eu-north-1b"], vpc_cidr = "10.42.0.0/16", artifact_bucket = "c" }
    }
  }

  expect_failures = [var.regions]
}

run "standby_region_needs_a_certificate" {
  command = plan

  variables {
    regions = {
      a = { region = "eu-west-1", azs = ["eu-west-1a", "eu-west-1b"], vpc_cidr = "10.40.0.0/16", artifact_bucket = "a", certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock" }
      b = { region = "eu-central-1", azs = ["eu-central-1a", "eu-central-1b"], vpc_cidr = "10.41.0.0/16", artifact_bucket = "b" }
      c = { region = "eu-north-1", azs = ["eu-north-1a", "eu-north-1b"], vpc_cidr = "10.42.0.0/16", artifact_bucket = "c" }
    }
  }

  expect_failures = [var.regions]
}
