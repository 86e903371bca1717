//! Issue 20's disaster-recovery drill "the coordinator's database is gone", on a simulated
//! cluster of real processes (`docs/operator-guide.md`, section 7b).
//!
//! The enclaves hold everything that signs: the genesis, the auxiliary info, every key's
//! share. A coordinator whose database is lost is given the pinned genesis again (`cohort
//! genesis restore`); every node answers that it holds it, the peers are admitted again and
//! the cluster is ready with no approval asked again and no new safe primes. The enclaves are
//! restarted as production ones run (no fixture primes), so that a restored enclave holding
//! auxiliary info has none: before the fix, the coordinator waited for primes that never came.
//!
//! Then the key records come back (`cohort key recover`): every node reports what it holds,
//! signed by its node key with a fresh nonce, and each key is restored with the archived
//! record (`cohort key list` as it was) whose receipts check against the pinned genesis and
//! name the generation every node holds. A tampered archive restores nothing; a stale one
//! (the key refreshed since) restores nothing for that key, even when keys without records are
//! asked for; a key the archive lacks comes back only when asked, without receipts, and gets
//! them from a newer record. Every restored key signs. The chain of admin changes comes back
//! from the nodes first (every node's statement), so that keys are made under the admin
//! version in force.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cli::ops;
use cli::sim::SimCluster;
use cli::trust::Trust;
use cohort_tests::{sim_options, wait_up};
use coordinator::api::{ClusterStatus, KeyInfo, KeyList, PresignatureUse};
use ed25519_dalek::SigningKey;
use protocol::policy::{Payload, Scheme};
use sha2::Digest;

/// Waits (up to 90 s) until the coordinator sees every node `operational`, holding `keys`
/// keys and no safe primes.
async fn wait_restored_without_primes(api: &cli::client::ApiClient, keys: u32) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = api.get::<ClusterStatus>("/v1/cluster").await;
        if let Ok(s) = &status
            && s.nodes.iter().all(|n| {
                n.reachable
                    && n.attested
                    && n.phase.as_deref() == Some("operational")
                    && n.keys == keys
                    && !n.primes_ready
            })
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not come back restored: {:?}",
            status.map(|s| s.nodes)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_whose_database_is_lost_is_restored_from_the_pinned_genesis() {
    let (dir, options) = sim_options("recovery-");
    let mut cluster = SimCluster::start(&options).await.unwrap();
    let api = cluster.info.api().unwrap();
    wait_up(&api).await;
    let admins: Vec<SigningKey> = (0..2)
        .map(|i| SigningKey::from_bytes(&[80 + i; 32]))
        .collect();
    let approver = SigningKey::from_bytes(&[90; 32]);
    let approvers = [approver.verifying_key().to_bytes()];
    let trust = ops::genesis(
        &api,
        &cohort_tests::expectations(&cluster),
        "recovery",
        &admins,
        2,
    )
    .await
    .unwrap();
    let pinned = dir.path().join("pinned-genesis.json");
    trust.pin(&pinned).unwrap();
    let cluster_id = trust.cluster_id();
    // An ECDSA key (every node holds auxiliary info, sealed) and two EdDSA keys; the operator
    // archives the key list. Then one key is refreshed (the archive is stale for it) and one
    // more made (the archive lacks it).
    let create = |id: &'static str, scheme: Scheme| {
        let (api, admins) = (api.clone(), admins.clone());
        async move {
            ops::create_key(&api, cluster_id, id, scheme, 2, &admins, &approvers, 1)
                .await
                .unwrap()
        }
    };
    create("before", Scheme::EcdsaSecp256k1).await;
    create("hot", Scheme::EddsaEd25519).await;
    let warm = create("warm", Scheme::EddsaEd25519).await;
    let archive: KeyList = api.get("/v1/keys").await.unwrap();
    assert_eq!(archive.keys.len(), 3);
    let warm = ops::reshare_key(
        &api,
        cluster_id,
        &warm,
        2,
        None,
        &admins,
        ops::Changes::default(),
    )
    .await
    .unwrap();
    // The admins change (a third joins): admin version 1, every node's statement recorded.
    let (chain, _) = cli::admins::fetch(&api, &trust).await.unwrap();
    let publics = [
        admins[0].verifying_key().to_bytes(),
        admins[1].verifying_key().to_bytes(),
        SigningKey::from_bytes(&[82; 32]).verifying_key().to_bytes(),
    ];
    let (_, answer) = cli::admins::set_admins(&api, &trust, &chain, (&publics, 2), &admins)
        .await
        .unwrap();
    assert_eq!((answer.version, answer.applied.len()), (1, 3), "{answer:?}");
    let late = create("late", Scheme::EddsaEd25519).await;
    // A roster change is proposed under admin version 1 (issue 20, membership): every node
    // holds it as pending, and names it on its inventory's first page.
    let (chain, status, rosters) = cli::roster::fetch(&api, &trust).await.unwrap();
    let (proposal, answer) = cli::roster::propose(
        &api,
        &trust,
        (&chain, &status, &rosters),
        cli::roster::Edit::Remove(2),
        &admins,
    )
    .await
    .unwrap();
    assert_eq!(answer.proposed.len(), 3, "{answer:?}");

    // The enclaves restart as production ones run: without fixture primes, so that one
    // restored with auxiliary info makes none.
    for id in 0..3 {
        cluster
            .edit_command(&format!("enclave-{id}"), |_, args| {
                let at = args.iter().position(|a| a == "--fixture-primes").unwrap();
                args.drain(at..at + 2);
            })
            .unwrap();
        cluster.restart_enclave(id).await.unwrap();
    }
    // The coordinator's database is gone.
    cluster.kill("coordinator").await.unwrap();
    cohort_tests::lose_coordinator_database(dir.path());
    cluster.restart("coordinator").await.unwrap();
    wait_up(&api).await;
    let status: ClusterStatus = api.get("/v1/cluster").await.unwrap();
    assert_eq!(status.genesis.state, "none", "{:?}", status.genesis);
    // The fault is in place: every node restored its sealed state and holds no safe primes.
    wait_restored_without_primes(&api, 4).await;

    // The operator gives the coordinator the pinned genesis again (`cohort genesis restore`).
    // Before the fix it waited for safe primes no node would make (30 minutes, then failed).
    let trust = Trust::load(&pinned).unwrap();
    let restored = tokio::time::timeout(
        Duration::from_secs(180),
        cli::ceremony::restore(&api, &trust),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("the restored genesis was not ready within 180 s (waiting for safe primes?)")
    })
    .unwrap();
    assert_eq!(restored.state, "ready", "{restored:?}");
    assert_eq!(ops::cluster_id(&api).await.unwrap(), cluster_id);
    let status: ClusterStatus = api.get("/v1/cluster").await.unwrap();
    assert!(
        status.nodes.iter().all(|n| n.healthy && !n.primes_ready),
        "{:?}",
        status.nodes
    );

    // The key records. A tampered archive (another public key, its receipts kept) restores
    // nothing: the record does not check against the pinned genesis.
    let mut tampered = archive.keys[1].clone();
    tampered.public_key.0[0] ^= 1;
    let report = cli::recover::recover(
        &api,
        &trust,
        &KeyList {
            keys: vec![tampered],
        },
        false,
    )
    .await
    .unwrap();
    assert!(report.restored.is_empty(), "{report:?}");
    assert!(
        reason(&report, "hot").starts_with("archive: bad_receipt"),
        "{report:?}"
    );
    // The chain of admin changes came back first, from the nodes: every node's statement,
    // checked here from the pinned genesis as every client checks it.
    assert_eq!(
        (
            report.admins,
            report.admin_changes_restored,
            report.image_changes_restored
        ),
        (1, 1, 0),
        "{report:?}"
    );
    let (chain, status) = cli::admins::fetch(&api, &trust).await.unwrap();
    assert_eq!((chain.current().version, status.changes.len()), (1, 1));
    assert_eq!(status.changes[0].statements.len(), 3, "{status:?}");
    // So did the roster change every node holds as proposed (helper-57, finding 8), with
    // every node's statement, as a client checks it.
    assert_eq!(report.roster_proposals_restored, 1, "{report:?}");
    let (_, roster, _) = cli::roster::fetch(&api, &trust).await.unwrap();
    assert_eq!(
        roster.pending.as_ref().map(|h| h.0.clone()),
        Some(proposal.hash().to_vec()),
        "{roster:?}"
    );
    assert_eq!(roster.proposals[0].statements.len(), 3, "{roster:?}");

    // A new ECDSA key is made on the auxiliary info every node held, under admin version 1.
    let fresh = create("after", Scheme::EcdsaSecp256k1).await;
    let fresh = trust.verify_key(fresh).unwrap().info().clone();
    sign_both(&api, cluster_id, &fresh, &approver).await;

    // The archive: the keys it holds at the generation every node holds come back, checked
    // against the pinned genesis; the refreshed key (a stale record) and the one made after
    // the archive do not.
    let report = cli::recover::recover(&api, &trust, &archive, false)
        .await
        .unwrap();
    assert_eq!((report.nodes, report.held), (3, 5), "{report:?}");
    assert_eq!(report.restored, ["before", "hot"], "{report:?}");
    assert_eq!(report.already_stored, ["after"], "{report:?}");
    assert!(
        reason(&report, "warm").starts_with("stale_archive"),
        "{report:?}"
    );
    assert!(
        reason(&report, "late").starts_with("no_archive"),
        "{report:?}"
    );
    for id in ["before", "hot"] {
        let key = trust.fetch_key(&api, id).await.unwrap().info().clone();
        let archived = archive.keys.iter().find(|k| k.key_id == id).unwrap();
        assert_eq!(&key, archived);
        sign_both(&api, cluster_id, &key, &approver).await;
    }

    // Asked to, the keys refused for want of a record come back without receipts — not the
    // one whose record was refused as stale (helper-50): they sign, and a client refuses them.
    let report = cli::recover::recover(&api, &trust, &archive, true)
        .await
        .unwrap();
    assert_eq!(report.restored_without_receipts, ["late"], "{report:?}");
    assert_eq!(report.not_restored.len(), 1, "{report:?}");
    assert!(
        report.not_restored[0].reason.starts_with("stale_archive"),
        "{report:?}"
    );
    let key: KeyInfo = api.get("/v1/keys/late").await.unwrap();
    assert!(key.receipts.is_none());
    assert!(trust.verify_key(key.clone()).is_err());
    sign_both(&api, cluster_id, &key, &approver).await;

    // Newer records (what the coordinator answered when "late" was made and "warm" refreshed,
    // as a newer archive would hold): "warm" comes back, "late" gets its receipts; both then
    // check as a client checks them, and sign.
    let newer = KeyList {
        keys: vec![late.clone(), warm.clone()],
    };
    let report = cli::recover::recover(&api, &trust, &newer, false)
        .await
        .unwrap();
    assert_eq!(report.restored, ["late", "warm"], "{report:?}");
    assert!(report.not_restored.is_empty(), "{report:?}");
    for record in [&late, &warm] {
        let key = trust
            .fetch_key(&api, &record.key_id)
            .await
            .unwrap()
            .info()
            .clone();
        assert_eq!(key.public_key, record.public_key);
        assert_eq!(key.receipts, record.receipts);
        sign_both(&api, cluster_id, &key, &approver).await;
    }
    let recovered = cohort_tests::audit_log(&api)
        .await
        .into_iter()
        .filter(|r| r.entry.action == "recover_key")
        .count();
    assert_eq!(recovered, 5);
    cluster.stop().await.unwrap();
}

/// Why `report` did not restore key `id` (empty if it did).
fn reason(report: &coordinator::api::RecoverReport, id: &str) -> String {
    report
        .not_restored
        .iter()
        .find(|n| n.key_id == id)
        .map(|n| n.reason.clone())
        .unwrap_or_default()
}

/// Signs a fresh payload with `key` (ECDSA over a digest, full signing; EdDSA over a message)
/// and checks the signature under its public key.
async fn sign_both(
    api: &cli::client::ApiClient,
    cluster: protocol::genesis::ClusterId,
    key: &KeyInfo,
    approver: &SigningKey,
) {
    let message = format!("{} after the database was lost", key.key_id).into_bytes();
    let digest: [u8; 32] = sha2::Sha256::digest(&message).into();
    let payload = match key.scheme {
        Scheme::EcdsaSecp256k1 => Payload::raw(digest.to_vec()),
        Scheme::EddsaEd25519 => Payload::raw(message.clone()),
    };
    let signed = ops::sign(
        api,
        cluster,
        ops::KeyRef::of(key),
        &[],
        payload,
        std::slice::from_ref(approver),
        Some(PresignatureUse::Never),
    )
    .await
    .unwrap();
    assert_eq!(signed.status, "completed", "{signed:?}");
    let signature = &signed.signatures[0].signature.0;
    match key.scheme {
        Scheme::EcdsaSecp256k1 => cohort_tests::verify_ecdsa(&key.public_key.0, &digest, signature),
        Scheme::EddsaEd25519 => cohort_tests::verify_eddsa(&key.public_key.0, &message, signature),
    }
}
