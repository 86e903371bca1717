//! Unit tests of `moves.rs`: the proxies a client names and one confirmed digest.

use super::*;

fn proxy(key: u8, url: &str) -> JoiningProxy {
    JoiningProxy {
        node_key: Hex(vec![key; 32]),
        proxy: url.into(),
    }
}

#[test]
fn the_proxies_named_are_of_nodes_the_change_adds_once_each() {
    let added: BTreeSet<Vec<u8>> = [vec![4; 32]].into();
    let ok = joining_proxies(&[proxy(4, "http://127.0.0.1:1")], &added).unwrap();
    assert_eq!(ok[&vec![4; 32]], "http://127.0.0.1:1");
    let e = joining_proxies(&[proxy(1, "http://127.0.0.1:1")], &added).unwrap_err();
    assert!(e.message.starts_with("not_joining: "), "{e}");
    let e = joining_proxies(
        &[
            proxy(4, "http://127.0.0.1:1"),
            proxy(4, "http://127.0.0.1:2"),
        ],
        &added,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::MalformedRequest);
    for url in [
        "file:///etc/passwd",
        "http://10.0.0.1:80/admin?",
        "http://10.0.0.1:80/?x=1",
        "http://user@10.0.0.1:80",
        "http://10.0.0.1:80/#f",
        "http://",
    ] {
        let e = joining_proxies(&[proxy(4, url)], &added).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedRequest, "{url}");
    }
    for url in ["http://127.0.0.1:8080", "https://proxy.internal:8443/"] {
        assert!(joining_proxies(&[proxy(4, url)], &added).is_ok(), "{url}");
    }
}

#[test]
fn two_digests_are_refused() {
    let moved = |d: u8| PartyMoved {
        index: 0,
        node_key: Hex(vec![1; 32]),
        digest: Hex(vec![d; 32]),
        statement: None,
    };
    assert!(one_digest(&[moved(1), moved(1)]).is_ok());
    let e = one_digest(&[moved(1), moved(2)]).unwrap_err();
    assert!(e.message.starts_with("digests_differ: "), "{e}");
}
