//! The admission bookkeeping and blame of `Nodes`, without a cluster.

use super::*;

fn keys(b: u8) -> IdentityKeys {
    IdentityKeys {
        signing: [b; 32],
        encryption: [b; 32],
    }
}

/// Three operational, attested nodes with identities 1, 2, 3 that all admitted each other.
fn admitted_cluster() -> Nodes {
    let nodes = Nodes::new(vec!["a".into(), "b".into(), "c".into()], Policy::default());
    {
        let mut states = nodes.states.write().unwrap();
        for (i, s) in states.iter_mut().enumerate() {
            s.reachable = true;
            s.attested = true;
            s.phase = Some(Phase::Operational);
            s.identity = Some(keys(i as u8 + 1));
            s.admitted = Some([i as u8 + 1; 32]);
            s.admitted_peers = (0..3u16)
                .filter(|p| usize::from(*p) != i)
                .map(|p| (p, [p as u8 + 1; 32]))
                .collect();
        }
    }
    nodes
}

/// What an admission round records of node `node`'s answer.
fn answers(nodes: &Nodes, node: u16, admitted: &[(u16, u8)], refused: &[(u16, u8)]) {
    nodes.update(node, |s| {
        for (p, k) in admitted {
            s.admitted_peers.insert(*p, [*k; 32]);
            s.refused_peers.remove(p);
        }
        for (p, k) in refused {
            s.refused_peers.insert(*p, ([*k; 32], Instant::now()));
            s.admitted_peers.remove(p);
        }
    });
}

fn restart(nodes: &Nodes, node: u16, identity: u8) {
    nodes.set_identity(node, Some(keys(identity)));
    nodes.update(node, |s| s.admitted = Some([identity; 32]));
}

#[test]
fn a_restarted_node_is_paired_only_with_peers_that_admitted_it() {
    let nodes = admitted_cluster();
    assert!(nodes.usable(&[0, 1, 2]));
    assert!(nodes.unadmitted().is_empty());
    // Node 1 restarts (a new identity, and a process that knows no peer).
    restart(&nodes, 1, 9);
    assert!(nodes.states()[1].admitted_peers.is_empty());
    // A round reaches nodes 1 and 2; the call to node 0 times out.
    answers(&nodes, 1, &[(0, 1), (2, 3)], &[]);
    answers(&nodes, 2, &[(1, 9)], &[]);
    assert_eq!(
        nodes.unadmitted(),
        vec![1],
        "another round, for node 0 to learn node 1"
    );
    assert!(!nodes.usable(&[0, 1]), "node 0 does not know node 1");
    assert!(
        nodes.usable(&[1, 2]) && nodes.usable(&[0, 2]),
        "the others go on"
    );
    assert_eq!(nodes.healthy_nodes(), vec![0, 1, 2]);
    answers(&nodes, 0, &[(1, 9)], &[]);
    assert!(nodes.unadmitted().is_empty());
    assert!(nodes.usable(&[0, 1, 2]));
}

/// The fault suite's "node 1 cut off while node 2 restarts": the restarted enclave was
/// offered only the peers the coordinator reached; what its previous process admitted does
/// not count for it.
#[test]
fn a_restarted_node_that_missed_a_peer_is_not_paired_with_it_until_it_admits_it() {
    let nodes = admitted_cluster();
    nodes.update(0, |s| s.reachable = false);
    restart(&nodes, 1, 9);
    answers(&nodes, 1, &[(2, 3)], &[]);
    answers(&nodes, 2, &[(1, 9)], &[]);
    assert!(nodes.unadmitted().is_empty(), "node 0 is down");
    assert!(nodes.usable(&[1, 2]));
    // Node 0 is back, unchanged: neither it nor node 1 knows the other's identity.
    nodes.update(0, |s| s.reachable = true);
    assert_eq!(nodes.unadmitted(), vec![0, 1]);
    assert!(!nodes.usable(&[0, 1]));
    assert!(nodes.usable(&[0, 2]) && nodes.usable(&[1, 2]));
    answers(&nodes, 1, &[(0, 1)], &[]);
    answers(&nodes, 0, &[(1, 9)], &[]);
    assert!(nodes.usable(&[0, 1, 2]));
}

/// The attack a helper's review found in the first form of this bookkeeping (every live
/// peer had to admit a node for it to be healthy): a parent forging its node's
/// `PeersAdmitted` (unauthenticated) as a refusal of everyone kept every other node out.
/// Per pair, it keeps only its own node out.
#[test]
fn a_node_that_refuses_everyone_keeps_only_itself_out() {
    let nodes = admitted_cluster();
    answers(&nodes, 2, &[], &[(0, 1), (1, 2)]);
    assert!(
        nodes.unadmitted().is_empty(),
        "answered: no storm of rounds"
    );
    assert!(nodes.usable(&[0, 1]));
    assert!(!nodes.usable(&[0, 2]) && !nodes.usable(&[1, 2]));
    assert_eq!(nodes.healthy_nodes(), vec![0, 1, 2]);
    let status = nodes.status();
    assert!(status[2].error.is_none(), "{:?}", status[2].error);
    assert!(status[0].error.as_deref().unwrap().contains("[2]"));
}

#[test]
fn a_refused_node_is_asked_about_again_after_a_while_or_a_phase_change() {
    let nodes = admitted_cluster();
    // Node 2 came back as an enclave the others refuse (not the roster's node key, or a
    // document that did not bind it yet).
    restart(&nodes, 2, 7);
    answers(&nodes, 2, &[(0, 1), (1, 2)], &[]);
    answers(&nodes, 0, &[], &[(2, 7)]);
    answers(&nodes, 1, &[], &[(2, 7)]);
    assert!(nodes.unadmitted().is_empty());
    assert!(nodes.usable(&[0, 1]) && !nodes.usable(&[0, 2]));
    assert_eq!(
        nodes.status()[2].error.as_deref(),
        Some("refused as a peer by node(s) [0, 1]")
    );
    // A refusal older than REFUSAL_RETRY is asked again.
    let long_ago = Instant::now().checked_sub(REFUSAL_RETRY).unwrap();
    nodes.update(0, |s| {
        s.refused_peers.get_mut(&2).unwrap().1 = long_ago;
    });
    assert_eq!(nodes.unadmitted(), vec![2]);
    // So is one of a node whose phase changed.
    answers(&nodes, 0, &[], &[(2, 7)]);
    assert!(nodes.unadmitted().is_empty());
    nodes.forget_refusals_of(2);
    assert_eq!(nodes.unadmitted(), vec![2]);
    assert!(!nodes.usable(&[0, 2]), "still not admitted");
}

/// A parent rewrites its node's session result to name every node of the cluster: only
/// the session's participants are blamed.
#[test]
fn culprits_outside_the_session_are_ignored() {
    let failed = |culprits: Vec<u16>| Outcome::Failed {
        code: FailureCode::Peer,
        message: "forged".into(),
        culprits,
    };
    let run = SessionRun {
        outcomes: BTreeMap::from([(0, failed(vec![1, 2, 3, 4])), (1, failed(vec![]))]),
        unresponsive: vec![],
    };
    assert_eq!(run.blamed(), vec![1]);
}

#[test]
fn a_peer_that_is_down_does_not_hold_the_others_back() {
    let nodes = admitted_cluster();
    nodes.update(1, |s| s.reachable = false);
    restart(&nodes, 1, 9);
    assert!(nodes.unadmitted().is_empty());
    assert_eq!(nodes.healthy_nodes(), vec![0, 2]);
    assert!(nodes.usable(&[0, 2]));
    // It comes back, not yet operational (its state not restored): not waited for.
    nodes.update(1, |s| {
        s.reachable = true;
        s.phase = Some(Phase::Ready);
    });
    assert!(nodes.unadmitted().is_empty());
    assert_eq!(nodes.healthy_nodes(), vec![0, 2]);
}

/// Session ids carry an expiry every enclave accepts: after now, within the hour.
#[test]
fn new_session_ids_expire_within_what_enclaves_accept() {
    let now = now().as_secs();
    let a: [u8; 32] = new_session_id().to_vec().try_into().unwrap();
    let b: [u8; 32] = new_session_id().to_vec().try_into().unwrap();
    assert_ne!(a, b);
    let expiry = protocol::session::session_id_expiry(&a);
    assert!(expiry >= now + SESSION_ID_LIFETIME_SECS, "{expiry} {now}");
    assert!(expiry <= now + 1 + SESSION_ID_LIFETIME_SECS);
}

#[test]
fn the_image_set_in_force_replaces_the_configured_pcrs_and_calls_for_attestation() {
    let configured = Policy {
        pcrs: [
            (0, vec![vec![0xa0; 48]]),
            (1, vec![vec![0xa1; 48]]),
            (3, vec![vec![3; 48]]),
            (8, vec![vec![8; 48]]),
        ]
        .into_iter()
        .collect(),
        ..Policy::default()
    };
    let nodes = Nodes::new(vec!["a".into(), "b".into()], configured.clone());
    // Before the genesis is ready: the configured values.
    assert_eq!(nodes.attestation_policy().pcrs, configured.pcrs);
    nodes.update(0, |s| s.last_attested = Some(Instant::now()));
    let old = [vec![0xa0; 48], vec![0xa1; 48], vec![0xa2; 48]];
    let new = [vec![0xb0; 48], vec![0xb1; 48], vec![0xb2; 48]];
    assert!(nodes.follow_images(vec![old.clone(), new.clone()]));
    let pcrs = nodes.attestation_policy().pcrs;
    for i in 0..3 {
        assert_eq!(pcrs[&i], vec![old[i].clone(), new[i].clone()], "PCR{i}");
    }
    // PCR3 (the parent's role) is not the image's: it stays as configured; PCR8 (a signed
    // image's certificate) is not pinned once the set is followed.
    assert_eq!(pcrs[&3], vec![vec![3; 48]]);
    assert!(!pcrs.contains_key(&8));
    assert!(
        nodes.states()[0].last_attested.is_none(),
        "not attested again"
    );
    // The same set again changes nothing; a retire leaves the new image alone.
    nodes.update(0, |s| s.last_attested = Some(Instant::now()));
    assert!(!nodes.follow_images(vec![old.clone(), new.clone()]));
    assert!(nodes.states()[0].last_attested.is_some());
    assert!(nodes.follow_images(vec![new.clone()]));
    let pcrs = nodes.attestation_policy().pcrs;
    assert_eq!(pcrs[&0], vec![new[0].clone()]);
    assert_eq!(pcrs[&2], vec![new[2].clone()]);
}

/// Issue 20 (membership): the nodes follow a committed roster's proxies. Nothing known of the
/// old nodes carries over (a node's admissions name peers by their old indices); the same
/// proxies again change nothing.
#[test]
fn a_committed_roster_replaces_the_nodes_and_everything_known_of_them() {
    let nodes = Nodes::new(vec!["a".into(), "b".into(), "c".into()], Policy::default());
    nodes.update(1, |s| {
        s.attested = true;
        s.admitted_peers.insert(2, [7; 32]);
    });
    assert!(!nodes.follow_roster(vec!["a".into(), "b".into(), "c".into()]));
    assert!(
        nodes.states()[1].attested,
        "the same roster keeps what is known"
    );
    // Node "b" removed, "d" added: indices move.
    assert!(nodes.follow_roster(vec!["a".into(), "c".into(), "d".into()]));
    assert_eq!(nodes.count(), 3);
    assert_eq!(nodes.proxies(), vec!["a", "c", "d"]);
    assert_eq!(nodes.proxy(1).as_deref(), Some("c"));
    assert!(
        nodes
            .states()
            .iter()
            .all(|s| !s.attested && s.admitted_peers.is_empty())
    );
    assert!(!nodes.healthy(1));
    // Grown to four: an index beyond the old count is a node now.
    assert!(nodes.follow_roster(vec!["a".into(), "c".into(), "d".into(), "e".into()]));
    assert_eq!(nodes.proxy(3).as_deref(), Some("e"));
    assert_eq!(nodes.proxy(4), None);
}

/// Issue 20 (membership; attacker review helper-77, L2): a status answer asked before the
/// nodes followed a committed roster is another node's by the time it comes back, and is
/// dropped: the node now at that index is neither marked reachable nor given that phase. The
/// answer is held until the roster is followed, so the race is hit every run.
#[tokio::test]
async fn a_status_asked_before_a_committed_roster_was_followed_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (asked, was_asked) = tokio::sync::oneshot::channel::<()>();
    let release = Arc::new(tokio::sync::Notify::new());
    let hold = release.clone();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = conn.read(&mut request).await.unwrap();
        let _ = asked.send(());
        hold.notified().await;
        let body = protocol::encode_frame(&EnclaveResponse::Status {
            phase: Phase::Operational,
            node: Some(0),
            keys: 1,
            presignatures: 0,
            primes_ready: true,
            failure: None,
            identity: None,
            workers: None,
        })
        .unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
    });
    let nodes = Arc::new(Nodes::new(vec![url], Policy::default()));
    let checking = tokio::spawn({
        let nodes = nodes.clone();
        async move { nodes.check(Duration::from_secs(3600)).await }
    });
    was_asked.await.unwrap();
    assert!(nodes.follow_roster(vec!["http://127.0.0.1:9".into()]));
    release.notify_one();
    let events = checking.await.unwrap();
    server.await.unwrap();
    assert!(events.is_empty(), "{events:?}");
    let states = nodes.states();
    let state = &states[0];
    assert!(
        !state.reachable,
        "another node's answer marked it reachable"
    );
    assert_eq!(state.phase, None);
    assert_eq!(state.keys, 0);
}
