//! A TCP relay that injects network faults between the coordinator and one node's proxy: it
//! forwards faithfully, adds latency, or partitions the node; and it can hold back the one
//! request that carries given bytes (an enclave request's CBOR name) until told, so that a fault
//! injected meanwhile demonstrably hit the step that request belongs to.
//!
//! Every byte between the coordinator and a node crosses its proxy's HTTP port (enclaves reach
//! each other only through the coordinator's relay of their envelopes), so putting this relay in
//! front of one proxy is the same, for Cohort, as putting that node behind a slow or cut link.
//! A partition holds what it receives instead of dropping it, as TCP would while its
//! retransmissions go unanswered: when the link heals, connections that are still open carry on
//! and those their ends gave up on are closed, as after a real partition.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forward at once.
    Up,
    /// Forward every chunk after this delay (in each direction).
    Slow(Duration),
    /// Forward nothing until the link is `Up` or `Slow` again; connections accepted meanwhile
    /// reach the node only then.
    Partitioned,
}

/// A running relay; dropping it stops accepting (open connections end with their peers).
pub struct FaultRelay {
    addr: SocketAddr,
    target: SocketAddr,
    link: watch::Sender<Link>,
    watched: Arc<Watched>,
    task: tokio::task::JoinHandle<()>,
}

/// Bytes the relay holds back on their way to the node ([`FaultRelay::hold_on`]), and whether
/// it holds them.
#[derive(Default)]
struct Watched {
    /// The pattern armed, with the number of the `hold_on` that armed it.
    pattern: std::sync::Mutex<Option<(u64, Vec<u8>)>>,
    armings: std::sync::atomic::AtomicU64,
    /// Whether a chunk was seized since the last `hold_on`: only one is.
    seen: std::sync::atomic::AtomicBool,
    /// Whether the chunk held is dropped, with its connection, instead of let through.
    cut: std::sync::atomic::AtomicBool,
}

impl Watched {
    fn armed(&self) -> Option<(u64, Vec<u8>)> {
        self.pattern
            .lock()
            .expect("the relay's pattern lock")
            .clone()
    }

    /// Looks for the pattern in `chunk`, read just after `tail` (the end of the connection's
    /// chunk before, kept here: a pattern split between two reads is found, a match that ended
    /// in an earlier chunk is not found again). The first chunk found since the pattern was
    /// armed is held until [`FaultRelay::release`]; returns whether this one was.
    async fn hold_if_seen(&self, tail: &mut Vec<u8>, chunk: &[u8]) -> bool {
        let Some((arming, p)) = self.armed() else {
            tail.clear();
            return false;
        };
        let mut joined = std::mem::take(tail);
        let fresh = joined.len();
        joined.extend_from_slice(chunk);
        let found = joined
            .windows(p.len())
            .enumerate()
            .any(|(at, w)| at + p.len() > fresh && w == p.as_slice());
        *tail = joined[joined.len().saturating_sub(p.len() - 1)..].to_vec();
        let seized = found
            && self
                .seen
                .compare_exchange(
                    false,
                    true,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                )
                .is_ok();
        if !seized {
            return false;
        }
        while self.armed().is_some_and(|(a, _)| a == arming) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl FaultRelay {
    /// Listens on a free loopback port and relays to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (link, watch) = watch::channel(Link::Up);
        let watched = Arc::new(Watched::default());
        let for_task = watched.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (watch, watched) = (watch.clone(), for_task.clone());
                tokio::spawn(async move {
                    let _ = relay(inbound, target, watch, watched).await;
                });
            }
        });
        Ok(Self {
            addr,
            target,
            link,
            watched,
            task,
        })
    }

    /// From now on, holds back the first chunk on its way to the node that carries `pattern`
    /// (e.g. an enclave request by its CBOR name, `b"commit_roster"`) until
    /// [`FaultRelay::release`]; other traffic passes. A fault injected once
    /// [`FaultRelay::seen`] is true demonstrably hit the step that request belongs to, before
    /// the node had it. If the coordinator's side of that connection closes meanwhile, the
    /// node's side stays open until the node answered: the request is delivered as it was
    /// sent.
    ///
    /// # Panics
    /// If `pattern` is empty.
    pub fn hold_on(&self, pattern: &[u8]) {
        assert!(!pattern.is_empty(), "an empty pattern");
        let arming = self
            .watched
            .armings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.watched
            .seen
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.watched
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
        *self
            .watched
            .pattern
            .lock()
            .expect("the relay's pattern lock") = Some((arming, pattern.to_vec()));
    }

    /// Whether the relay holds a chunk [`FaultRelay::hold_on`] looked for.
    pub fn seen(&self) -> bool {
        self.watched.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets what [`FaultRelay::hold_on`] held through, and holds nothing more.
    pub fn release(&self) {
        *self
            .watched
            .pattern
            .lock()
            .expect("the relay's pattern lock") = None;
    }

    /// Drops what [`FaultRelay::hold_on`] held, and closes its connection at both ends, as
    /// if the sender had died before its bytes left (a broker then sees a client that went
    /// away without acknowledging what it held); holds nothing more.
    pub fn cut_held(&self) {
        self.watched
            .cut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.release();
    }

    /// `ADDR` of the relay.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` of the relay.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the link does, for traffic from now on.
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Puts a relay in front of each node's proxy of `cluster`, in node order, and has the
/// coordinator reach every proxy through its relay from its next start (the caller restarts
/// it, after any edits of its own): relay `i` is node `i`'s link.
///
/// # Panics
/// If a relay cannot listen, or the coordinator's command does not name each node's proxy
/// exactly once.
pub async fn put_behind_relays(cluster: &mut cli::sim::SimCluster) -> Vec<FaultRelay> {
    let mut relays = Vec::new();
    for n in &cluster.info.nodes {
        let target = n
            .proxy_url
            .trim_start_matches("http://")
            .parse()
            .expect("a simulated node's proxy listens on ip:port");
        relays.push(FaultRelay::start(target).await.expect("a relay listens"));
    }
    cluster
        .edit_command("coordinator", |_, args| route_through(args, &relays))
        .expect("the simulated cluster runs a coordinator");
    relays
}

/// Points every `--proxy URL` in `args` at the relay in front of that URL.
///
/// # Panics
/// If a proxy named has no relay, or a relay's proxy is not named exactly once.
pub fn route_through(args: &mut [String], relays: &[FaultRelay]) {
    let mut routed = vec![0usize; relays.len()];
    for i in 1..args.len() {
        if args[i - 1] != "--proxy" {
            continue;
        }
        let proxy: SocketAddr = args[i]
            .trim_start_matches("http://")
            .parse()
            .expect("--proxy names ip:port");
        let at = relays
            .iter()
            .position(|r| r.target == proxy)
            .unwrap_or_else(|| panic!("no relay in front of the proxy {proxy}"));
        routed[at] += 1;
        args[i] = relays[at].url();
    }
    assert!(
        routed.iter().all(|&n| n == 1),
        "each relay's proxy is named once: {routed:?}"
    );
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the link carries traffic; returns the delay to apply.
async fn passable(watch: &mut watch::Receiver<Link>) -> Option<Duration> {
    loop {
        let link = *watch.borrow_and_update();
        match link {
            Link::Up => return Some(Duration::ZERO),
            Link::Slow(d) => return Some(d),
            Link::Partitioned => {
                if watch.changed().await.is_err() {
                    return None;
                }
            }
        }
    }
}

async fn relay(
    inbound: TcpStream,
    target: SocketAddr,
    mut watch: watch::Receiver<Link>,
    watched: Arc<Watched>,
) -> std::io::Result<()> {
    if passable(&mut watch).await.is_none() {
        return Ok(());
    }
    let outbound = TcpStream::connect(target).await?;
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    let closed = Arc::new(tokio::sync::Notify::new());
    let up = tokio::spawn(pump(ri, wo, watch.clone(), (closed.clone(), Some(watched))));
    let down = tokio::spawn(pump(ro, wi, watch, (closed.clone(), None)));
    // When either direction ends, both do (a half-open HTTP connection serves no one).
    closed.notified().await;
    up.abort();
    down.abort();
    Ok(())
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut watch: watch::Receiver<Link>,
    (closed, watched): (Arc<tokio::sync::Notify>, Option<Arc<Watched>>),
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut held = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) if held => {
                // The coordinator's side closed after a held request: the node's side stays
                // open, not even half-closed (`to` is kept), until the node answered (the
                // answer then finds no one and ends the relay, which aborts this task), so the
                // request is delivered, not cut off half-way.
                return std::future::pending::<()>().await;
            }
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(w) = &watched {
            let this = w.hold_if_seen(&mut tail, &buf[..n]).await;
            if this && w.cut.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            held |= this;
        }
        let Some(delay) = passable(&mut watch).await else {
            break;
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    closed.notify_one();
}
