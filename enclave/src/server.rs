//! The enclave's request handling and its accept loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};

use attestation::nsm::{AttestationRequest, Nsm};
use attestation::{Binding, NodeBinding, Policy};
use protocol::{
    EnclaveError, EnclaveRequest, EnclaveResponse, ErrorCode, FrameError, MAX_NONCE_LEN, Phase,
};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::identity::SecretIdentity;
use crate::lifecycle::{Event, Lifecycle};
#[cfg(test)]
use crate::node::TestHook;
use crate::node::{Background, Node, OwnPcrs, Resumed, default_workers};
use crate::primes::{PrimePool, PrimesProbe};
use crate::seal::Sealer;
use crate::transport::{self, Listener, Stream};
use node_thread::{resume_on, work};

/// What an enclave boots with.
pub struct BootConfig {
    /// Its NSM, or why there is none.
    pub nsm: Result<Arc<dyn Nsm>, String>,
    /// The sealing authority (and the legacy one it can still read).
    pub sealing: Sealer,
    /// DER of the root that peers' documents must chain to (the AWS root in production).
    pub root_der: Vec<u8>,
    /// Safe primes for auxiliary info.
    pub primes: PrimePool,
    /// Worker threads for background protocol work (`None`: one per CPU).
    pub workers: Option<usize>,
    /// How the background lane's threads yield the CPU.
    pub background: Background,
}

/// One enclave: its lifecycle, identity, NSM and cluster state.
///
/// The cluster state ([`Node`]) lives on one thread, the node's: one thread serialises every
/// change to keys, presignatures and sessions. Requests reach it through a channel. It serves
/// the online path itself (signing from a presignature, FROST rounds, aborts) and hands the
/// CPU-heavy protocol work of background sessions (presignatures, auxiliary information, key
/// generation, full ECDSA signing) to a pool of worker threads, one per CPU by default; a
/// worker's result comes back to the node's thread as a job of its own, which answers the
/// request that sent it (issue 22). Status and the clock are answered without the node's
/// thread at all.
///
/// The worker contains panics (issue 18): one inside a protocol machine fails that session
/// only (the node reports it in `status` and goes on); one anywhere else leaves the node's
/// state untrusted, so the worker drops that state and the enclave enters the terminal
/// `failed` phase with the reason, which `status` reports. A worker thread that is gone all
/// the same fails the enclave the same way at the next request.
pub struct Enclave {
    lifecycle: Arc<Mutex<Lifecycle>>,
    identity: Arc<SecretIdentity>,
    /// The node key and KMS key, once enrolled or restored: identity documents bind them
    /// (binding version 2) from then on. Set once by the worker, never changed.
    node: Arc<OnceLock<NodeBinding>>,
    nsm: Option<Arc<dyn Nsm>>,
    worker: Option<Arc<Mutex<mpsc::Sender<Job>>>>,
    /// What `status` reports, refreshed by the worker after every request: status is answered
    /// without waiting for the worker, which may be busy for seconds (a protocol round, KMS
    /// calls during a restore).
    snapshot: Arc<Mutex<Snapshot>>,
    primes: PrimesProbe,
}

/// The cluster state `status` reports.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    node: Option<u16>,
    keys: u32,
    presignatures: u32,
    counters: Counters,
    /// The last panic contained to its session.
    last_panic: Option<String>,
    /// Worker threads in each lane of the node's pool, as started.
    workers: usize,
}

/// What the enclave's memory holds that grows with use (issue 18: bounded, and measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sessions in progress.
    pub sessions: usize,
    /// Session ids used for good.
    pub used_sessions: usize,
    /// Consumed request use keys remembered (requests not expired yet).
    pub remembered_requests: usize,
    /// Presignatures held.
    pub presignatures: usize,
    /// Ids of sessions aborted before they started, remembered (at most 65,536).
    pub aborted_remembered: usize,
    /// Panics contained to their session (each failed that session only).
    pub contained_panics: usize,
}

impl Snapshot {
    fn of(node: &Node) -> Self {
        Self {
            node: node.index(),
            keys: node.key_count() as u32,
            presignatures: node.presignature_count() as u32,
            counters: Counters {
                sessions: node.session_count(),
                used_sessions: node.used_session_count(),
                remembered_requests: node.remembered_request_count(),
                presignatures: node.presignature_count(),
                aborted_remembered: node.aborted_remembered_count(),
                contained_panics: node.contained_panic_count(),
            },
            last_panic: node.last_contained_panic().map(str::to_string),
            workers: node.workers(),
        }
    }
}

/// What the node's thread is asked to do.
// A request is the large variant and the common one: boxing it to save the smaller variants'
// padding would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Work {
    Request(EnclaveRequest),
    /// A background session's work, done on its worker thread: finished on the node's thread.
    Resume(Resumed),
    /// Tests only: hold every background task at this gate until it opens.
    #[cfg(test)]
    Hold(Arc<crate::node::Gate>),
    /// Tests only: a hook into the node or the worker.
    #[cfg(test)]
    Test(TestHook),
    /// Tests only: the keys' incoming generations the node holds.
    #[cfg(test)]
    Incoming,
    /// Tests only: a look at the node, on its thread.
    #[cfg(test)]
    Probe(Box<dyn FnOnce(&Node) + Send>),
}

struct Job {
    work: Work,
    reply: mpsc::Sender<EnclaveResponse>,
}

impl std::fmt::Debug for Enclave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enclave")
            .field("phase", &self.phase())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Enclave {
    /// Boots an enclave: generates identity keys and checks that its NSM attests them; its own
    /// PCRs (read from that document) become the PCRs peers must have. A missing NSM
    /// (`Err(reason)`) or a failing one leaves the enclave in the terminal `boot_failed` phase.
    pub fn boot(config: BootConfig) -> Self {
        let identity = Arc::new(SecretIdentity::generate());
        let mut lifecycle = Lifecycle::new();
        let mut node_policy = None;
        let (nsm, outcome) = match config.nsm {
            Ok(nsm) => {
                let probe = identity_request(&identity, None, None);
                let outcome = nsm
                    .attest(&probe)
                    .map_err(|e| e.to_string())
                    .and_then(|doc| {
                        attestation::verify::decode_unverified(&doc).map_err(|e| e.to_string())
                    })
                    .map(|own| {
                        let mut policy = Policy::default().with_root(config.root_der.clone());
                        for i in [0usize, 1, 2] {
                            if let Some(v) = own.pcrs.get(&i) {
                                policy = policy.allow_pcr(i, v.to_vec());
                            }
                        }
                        let own_pcrs = own.pcrs.iter().map(|(i, v)| (*i, v.to_vec())).collect();
                        node_policy = Some((policy, OwnPcrs(own_pcrs)));
                    });
                (Some(nsm), outcome)
            }
            Err(reason) => (None, Err(reason)),
        };
        let (event, reason) = match outcome {
            Ok(()) => (Event::BootSucceeded, None),
            Err(reason) => (Event::BootFailed, Some(reason)),
        };
        let phase = lifecycle
            .apply(event, reason.clone())
            .expect("booting accepts both boot outcomes");
        match reason {
            None => {
                info!(%phase, identity = %hex_key(&identity.public().signing), "enclave booted")
            }
            Some(why) => warn!(%phase, reason = %why, "enclave boot failed"),
        }
        let lifecycle = Arc::new(Mutex::new(lifecycle));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let node_binding = Arc::new(OnceLock::new());
        let probe = config.primes.probe();
        let workers = (
            config.workers.unwrap_or_else(default_workers),
            config.background,
        );
        let worker = node_policy.map(|(policy, own_pcrs)| {
            let (tx, rx) = mpsc::channel::<Job>();
            let tx = Arc::new(Mutex::new(tx));
            // A worker's result comes back to the node's thread on the same channel. Weak: the
            // node's thread ends once the enclave is gone and no result is on its way.
            let jobs = Arc::downgrade(&tx);
            let (identity, lifecycle) = (identity.clone(), lifecycle.clone());
            let (sealing, primes) = (config.sealing, config.primes);
            let snapshot = snapshot.clone();
            let binding = node_binding.clone();
            std::thread::Builder::new()
                .name("cluster-node".into())
                .spawn(move || {
                    let mut node = Some(Node::new(policy, own_pcrs, (sealing, primes), workers));
                    if let Some(node) = &node {
                        *snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Snapshot::of(node);
                    }
                    for job in rx {
                        let then = || resume_on(&jobs, &job.reply);
                        let (response, go_on) = work(
                            &mut node,
                            (&identity, &lifecycle, &binding),
                            job.work,
                            &then,
                        );
                        let mut shown = snapshot.lock().unwrap_or_else(|p| p.into_inner());
                        *shown = match &node {
                            Some(node) => Snapshot::of(node),
                            // Failed: its state is gone; its index and last panic stay shown.
                            None => Snapshot {
                                node: shown.node,
                                last_panic: shown.last_panic.take(),
                                ..Snapshot::default()
                            },
                        };
                        drop(shown);
                        // None: a worker answers it later, through the node's thread.
                        if let Some(response) = response {
                            let _ = job.reply.send(response);
                        }
                        if !go_on {
                            break;
                        }
                    }
                })
                .map(|_| tx)
        });
        let worker = match worker {
            Some(Ok(w)) => Some(w),
            Some(Err(e)) => {
                warn!(error = %e, "cannot start the cluster worker thread");
                None
            }
            None => None,
        };
        Self {
            lifecycle,
            identity,
            node: node_binding,
            nsm,
            worker,
            snapshot,
            primes: probe,
        }
    }

    fn ask_worker(&self, work: Work) -> EnclaveResponse {
        let Some(worker) = &self.worker else {
            return EnclaveResponse::Error(EnclaveError::new(
                ErrorCode::Internal,
                "no cluster state",
            ));
        };
        let (reply, answer) = mpsc::channel();
        let sent = worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Job { work, reply });
        match sent.ok().and_then(|()| answer.recv().ok()) {
            Some(response) => response,
            None => {
                // The worker contains its panics, so this is a bug; fail visibly all the same.
                let why = "the cluster worker stopped";
                if self
                    .lifecycle()
                    .apply(Event::WorkerFailed, Some(why.into()))
                    .is_ok()
                {
                    warn!(reason = why, "enclave failed");
                }
                EnclaveResponse::Error(EnclaveError::new(ErrorCode::Internal, why))
            }
        }
    }

    /// Tests only: applies `hook` on the worker; answers as `status` would, or with the
    /// worker's error.
    #[cfg(test)]
    pub(crate) fn test_hook(&self, hook: TestHook) -> EnclaveResponse {
        match self.ask_worker(Work::Test(hook)) {
            EnclaveResponse::Error(e) => EnclaveResponse::Error(e),
            _ => self.handle(EnclaveRequest::Status),
        }
    }

    /// Tests only: holds every background task of this enclave at `gate` until it opens.
    #[cfg(test)]
    pub(crate) fn hold_background(&self, gate: Arc<crate::node::Gate>) {
        if let EnclaveResponse::Error(e) = self.ask_worker(Work::Hold(gate)) {
            panic!("hold: {e:?}");
        }
    }

    /// Tests only: what `look` sees of the node, on the node's thread (after every job sent
    /// before).
    #[cfg(test)]
    pub(crate) fn probe<T: Send + 'static>(
        &self,
        look: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        let probe = Box::new(move |node: &Node| {
            let _ = tx.send(look(node));
        });
        if let EnclaveResponse::Error(e) = self.ask_worker(Work::Probe(probe)) {
            panic!("probe: {e:?}");
        }
        rx.recv().expect("the probe ran")
    }

    /// Tests only: each incoming generation the node holds, as (its index, "key id, confirmed
    /// digest in hex").
    #[cfg(test)]
    pub(crate) fn incoming_for_test(&self) -> Vec<(u16, String)> {
        match self.ask_worker(Work::Incoming) {
            EnclaveResponse::PeersAdmitted { refused, .. } => refused,
            other => panic!("incoming: {other:?}"),
        }
    }

    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        // A panic while holding this lock cannot leave the lifecycle half-updated (apply only
        // assigns after all checks), so a poisoned lock is still consistent.
        self.lifecycle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.lifecycle().phase()
    }

    /// The public identity keys.
    pub fn identity(&self) -> attestation::IdentityKeys {
        self.identity.public()
    }

    /// The node key and KMS key identity documents bind, once enrolled or restored.
    pub fn node_binding(&self) -> Option<NodeBinding> {
        self.node.get().cloned()
    }

    /// The enclave's own counters of what its memory holds, as of its last request.
    pub fn counters(&self) -> Counters {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counters
    }

    /// Answers one request.
    pub fn handle(&self, request: EnclaveRequest) -> EnclaveResponse {
        if let Err(e) = self.lifecycle().admit(&request) {
            return EnclaveResponse::Error(e);
        }
        match request {
            EnclaveRequest::Status => {
                let s = self
                    .snapshot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let (phase, failure) = {
                    let l = self.lifecycle();
                    (l.phase(), l.failure().map(str::to_string))
                };
                EnclaveResponse::Status {
                    phase,
                    node: s.node,
                    keys: s.keys,
                    presignatures: s.presignatures,
                    primes_ready: self.worker.is_some() && self.primes.ready(),
                    failure: failure.or(s.last_panic),
                    identity: Some(ByteBuf::from(self.identity.public().signing.to_vec())),
                    workers: (s.workers > 0).then(|| u16::try_from(s.workers).unwrap_or(u16::MAX)),
                }
            }
            EnclaveRequest::Attest { nonce } => self.attest(nonce),
            // Not through the worker: the clock answers even while it is busy.
            EnclaveRequest::Clock => EnclaveResponse::Clock {
                time: crate::node::clock_now(),
            },
            other => self.ask_worker(Work::Request(other)),
        }
    }

    fn attest(&self, nonce: Option<ByteBuf>) -> EnclaveResponse {
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return EnclaveResponse::Error(EnclaveError::new(
                ErrorCode::BadRequest,
                format!("nonce longer than {MAX_NONCE_LEN} bytes"),
            ));
        }
        let Some(nsm) = &self.nsm else {
            return EnclaveResponse::Error(EnclaveError::new(ErrorCode::Nsm, "no nsm"));
        };
        let request = identity_request(
            &self.identity,
            self.node.get(),
            nonce.map(ByteBuf::into_vec),
        );
        match nsm.attest(&request) {
            Ok(document) => EnclaveResponse::Attestation {
                document: ByteBuf::from(document),
            },
            Err(e) => EnclaveResponse::Error(EnclaveError::new(ErrorCode::Nsm, e.to_string())),
        }
    }

    /// Decodes a frame payload and answers it; undecodable frames get a typed error.
    pub fn handle_payload(&self, payload: &[u8]) -> EnclaveResponse {
        match protocol::decode_payload::<EnclaveRequest>(payload) {
            Ok(request) => {
                debug!(request = %request, "request");
                self.handle(request)
            }
            Err(FrameError::UnsupportedVersion(v)) => EnclaveResponse::Error(EnclaveError::new(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported"),
            )),
            Err(e) => {
                EnclaveResponse::Error(EnclaveError::new(ErrorCode::BadRequest, e.to_string()))
            }
        }
    }
}

/// An identity document's request: binding version 1 before the enclave holds a node key,
/// version 2 (node key and KMS key as well) after.
fn identity_request(
    identity: &SecretIdentity,
    node: Option<&NodeBinding>,
    nonce: Option<Vec<u8>>,
) -> AttestationRequest {
    let binding = Binding {
        identity: identity.public(),
        node: node.cloned(),
    };
    AttestationRequest {
        user_data: Some(binding.user_data().to_vec()),
        nonce,
        public_key: Some(binding.public_key()),
    }
}

/// Serves `enclave` on `listener`, one thread per connection, until `shutdown` returns (the
/// connections end with the process).
pub fn run(
    listener: Listener,
    enclave: Arc<Enclave>,
    shutdown: impl FnOnce(),
) -> std::io::Result<()> {
    let listener = Arc::new(listener);
    let accepting = listener.clone();
    std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(&accepting, &enclave))?;
    shutdown();
    info!("shutting down");
    listener.remove_socket_file();
    Ok(())
}

/// The most connections served at once (one thread each). The parent's proxy keeps a small
/// pool; a host that opens more gets them closed at once instead of exhausting threads and
/// memory (DESIGN: the parent may deny service, never more).
pub const MAX_CONNECTIONS: usize = 64;

fn accept_loop(listener: &Listener, enclave: &Arc<Enclave>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        match listener.accept() {
            Ok(stream) => {
                if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::SeqCst);
                    warn!(
                        max = MAX_CONNECTIONS,
                        "too many connections; closing a new one"
                    );
                    drop(stream);
                    continue;
                }
                let (enclave, held) = (enclave.clone(), open.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("connection".into())
                        .spawn(move || {
                            if let Err(e) = serve_connection(stream, &enclave) {
                                debug!(error = %e, "connection closed");
                            }
                            held.fetch_sub(1, Ordering::SeqCst);
                        });
                if let Err(e) = spawned {
                    open.fetch_sub(1, Ordering::SeqCst);
                    warn!(error = %e, "cannot start a connection thread");
                }
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

fn serve_connection(mut stream: Stream, enclave: &Enclave) -> std::io::Result<()> {
    loop {
        let payload = match transport::read_frame(&mut stream) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let Some(bad) = transport::frame_error(&e) {
                    // The stream cannot be resynchronised after a bad length: answer, then close.
                    let reply = EnclaveResponse::Error(EnclaveError::new(
                        ErrorCode::BadRequest,
                        bad.to_string(),
                    ));
                    if let Ok(frame) = protocol::encode_frame(&reply) {
                        let _ = transport::write_frame(&mut stream, &frame);
                    }
                }
                return Err(e);
            }
        };
        // A panicking handler answers with an error instead of dropping the connection.
        let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            enclave.handle_payload(&payload)
        }))
        .unwrap_or_else(|_| {
            EnclaveResponse::Error(EnclaveError::new(
                ErrorCode::Internal,
                "request handler panicked",
            ))
        });
        let frame = protocol::encode_frame(&response)
            .or_else(|e| {
                protocol::encode_frame(&EnclaveResponse::Error(EnclaveError::new(
                    ErrorCode::Internal,
                    format!("response could not be encoded: {e}"),
                )))
            })
            .map_err(transport::bad_frame)?;
        transport::write_frame(&mut stream, &frame)?;
    }
}

fn hex_key(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

mod node_thread;
#[cfg(test)]
mod tests;
