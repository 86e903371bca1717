//! Background protocol work on a pool of worker threads, so that the online path never waits
//! behind it (issue 22).
//!
//! The node's own thread keeps every decision and all of the node's state: checks, the
//! single use of requests and presignatures, envelope authentication and sealing, keeping
//! what a protocol made. What costs CPU seconds runs elsewhere: a background session's
//! protocol machine (a presignature, auxiliary information, a key generation, full ECDSA
//! signing) is built on one worker thread of the pool, its *home*, and every later step of it
//! runs there, in the order the node sent them. The machines are not `Send` (round-based
//! shares state through an `Rc`), so a machine is never moved: it is built where it lives.
//!
//! The pool has two lanes of as many threads each. Background work (presignatures, auxiliary
//! information, key generation) runs on the *background* lane, whose threads yield the CPU to
//! everything else ([`Background`]): `SCHED_IDLE` in a production enclave, whose vCPUs run
//! nothing but the enclave, so that background work gets exactly the CPU the online path leaves;
//! nice 10 in a simulated one, which shares its machine with other processes that an idle
//! thread would wait behind indefinitely. Full ECDSA signing, which a client waits for but which makes a presignature
//! first, runs on the *interactive* lane at normal priority: it never waits behind a
//! presignature's round either, and while one is alive the background lane starts no new task
//! for up to [`MAX_DEFER`] (a round already running finishes), so that full signing has the
//! enclave's CPU to itself.
//!
//! A worker answers through the continuation the node gave with the task ([`Then`]): the
//! server posts the result back to the node's thread, which finishes the request there
//! ([`Node::resume`]). Meanwhile the node's thread serves the online path (status, signing
//! from a presignature, FROST rounds, aborts) and dispatches more background work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
#[cfg(test)]
use std::sync::{Condvar, Mutex};

use protocol::peer::{PeerEnvelope, SESSION_ID_LEN};
use protocol::session::{FailureCode, SessionUpdate};
use tracing::warn;

use super::bounds::panic_reason;
use super::machine::{Machine, Product};
use super::session::{Session, seal_all, update};
use super::{Node, NodeError, failed, hex_short};
use crate::identity::SecretIdentity;
use crate::mpc::{IncomingMessage, MpcError, OutgoingMessage, Step};

type Sid = [u8; SESSION_ID_LEN];

/// Builds a background session's machine on its home thread; answers it and its first
/// messages.
pub(super) type Launch =
    Box<dyn FnOnce() -> Result<(Box<dyn Machine>, Vec<OutgoingMessage>), MpcError> + Send>;

/// What is done with a background task's result: the server posts it back to the node's thread
/// (as a job whose answer goes to the request that sent the task).
pub type Then = Box<dyn FnOnce(Resumed) + Send>;

/// A background task's result, on its way back to the node's thread.
pub struct Resumed {
    sid: Sid,
    ran: Ran,
}

impl std::fmt::Debug for Resumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumed")
            .field("session", &hex_short(&self.sid))
            .finish_non_exhaustive()
    }
}

/// What a worker's run of a machine came to.
enum Ran {
    /// It went on: these messages out, and its product if it finished.
    Went(Vec<OutgoingMessage>, Option<Box<Product>>),
    Failed(MpcError),
    /// A panic inside the machine, contained to its session (issue 18), with its reason.
    Panicked(String),
    /// The machine is not on its home thread any more (the session was dropped meanwhile).
    Gone,
}

enum Task {
    Launch {
        sid: Sid,
        launch: Launch,
        #[cfg(test)]
        gate: Option<Arc<Gate>>,
        then: Then,
    },
    Step {
        sid: Sid,
        messages: Vec<IncomingMessage>,
        /// Tests only: panic inside the machine at the first message.
        panic: bool,
        #[cfg(test)]
        gate: Option<Arc<Gate>>,
        then: Then,
    },
    /// The session ended at the node: its machine goes too.
    Drop { sid: Sid },
    /// Tests only: whether the session's machine lives on the worker, once every task before
    /// ran.
    #[cfg(test)]
    Has {
        sid: Sid,
        answer: mpsc::Sender<bool>,
    },
}

/// The worker threads sessions whose machines cost CPU seconds live on: two lanes.
pub(super) struct Pool {
    background: Vec<Worker>,
    interactive: Vec<Worker>,
    /// The interactive sessions alive, which the background lane gives way to.
    alive: Arc<Alive>,
}

/// How long a background task waits, at most, for the interactive sessions alive to end
/// before it runs all the same: background work is deferred, never starved.
pub const MAX_DEFER: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a background task giving way looks whether the interactive sessions ended.
const GIVE_WAY_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// A count of interactive sessions alive, which the background lane waits to reach zero.
///
/// An atomic, polled, rather than a mutex and a condition variable: the node's thread counts,
/// and must never wait for a lock a background thread holds, since a background thread holding
/// one may not get the CPU back for a long time (`SCHED_IDLE`, attacker review helper-86).
#[derive(Debug, Default)]
struct Alive(AtomicUsize);

impl Alive {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn sub(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Waits until none is alive, or `most` passed.
    fn give_way(&self, most: std::time::Duration) {
        let until = std::time::Instant::now() + most;
        while self.0.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(GIVE_WAY_POLL);
        }
    }
}

/// Which lane of the pool a session lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Presignatures, auxiliary information, key generation: at a lower priority.
    Background,
    /// Full ECDSA signing, which a client waits for: at normal priority.
    Interactive,
}

/// How the background lane's threads yield the CPU (`--background`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Background {
    /// `SCHED_IDLE`: a background thread gets the CPU a thread at the default priority
    /// leaves, and where one wants it, about 0.3 % of its share (a weight of 3 against 1024):
    /// the online path does not wait for background rounds. For an enclave, whose vCPUs run
    /// the enclave alone; on a shared machine any busy process holds background work back,
    /// and protocol sessions time out.
    Idle,
    /// Nice 10: where the CPU is short, a thread at the default priority gets about ten times
    /// a background thread's share. Background work always progresses.
    Nice,
}

/// The nice value of the background lane's threads under [`Background::Nice`].
const BACKGROUND_NICE: i32 = 10;

#[derive(Clone)]
struct Worker {
    tasks: mpsc::Sender<Task>,
    /// Launch and step tasks sent to it and not answered yet.
    load: Arc<AtomicUsize>,
}

impl Worker {
    /// Sends `task`; a worker that is gone answers it at once as failed.
    fn send(&self, task: Task) {
        self.load.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::SendError(task)) = self.tasks.send(task) {
            // Gone: never the least loaded again.
            self.load.store(usize::MAX / 2, Ordering::SeqCst);
            answer_unsent(task);
        }
    }
}

/// The number of background worker threads when none is configured: one per CPU the enclave
/// has.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Pool {
    /// Starts `threads` worker threads in each lane (at least one). A thread that cannot be
    /// started is left out, with a warning; with none at all in a lane, every session of that
    /// lane fails (`internal`).
    pub(super) fn new(threads: usize, yielding: Background) -> Self {
        let alive = Arc::new(Alive::default());
        Self {
            background: lane(threads, "background", Some((alive.clone(), yielding))),
            interactive: lane(threads, "interactive", None),
            alive,
        }
    }

    /// The number of worker threads in each lane.
    pub(super) fn size(&self) -> usize {
        self.background.len()
    }

    /// The home for a new session of `lane`: its worker with the least work waiting.
    fn home(&self, lane: Lane) -> Option<&Worker> {
        let workers = match lane {
            Lane::Background => &self.background,
            Lane::Interactive => &self.interactive,
        };
        workers.iter().min_by_key(|w| w.load.load(Ordering::SeqCst))
    }
}

/// A lane of `threads` workers; a background one (`gives_way`) yields the CPU as it says and
/// gives way to the interactive sessions alive.
fn lane(threads: usize, name: &str, gives_way: Option<(Arc<Alive>, Background)>) -> Vec<Worker> {
    // A background lane's results are answered by a relay thread at normal priority, never by
    // the worker itself (attacker review helper-86): answering posts a job to the node's
    // thread, which takes that channel's lock and wakes the node's thread, which may then
    // preempt the worker while it still holds the lock. A worker at a low priority might not
    // get the CPU back for long, and the node's thread, next waiting for a job, would wait for
    // it. With the relay, only the relay waits.
    let relay = match gives_way {
        Some(_) => relay(name),
        None => None,
    };
    let mut workers = Vec::new();
    for i in 0..threads.max(1) {
        let (tasks, rx) = mpsc::channel();
        let load = Arc::new(AtomicUsize::new(0));
        let held = load.clone();
        let gives_way = gives_way.clone();
        let relay = relay.clone();
        match std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                if let Some((_, yielding)) = &gives_way {
                    lower_priority(*yielding);
                }
                let answer = |then: Then, resumed: Resumed| match &relay {
                    Some(relay) => {
                        if let Err(mpsc::SendError((then, resumed))) = relay.send((then, resumed)) {
                            then(resumed);
                        }
                    }
                    None => then(resumed),
                };
                serve(
                    &rx,
                    &held,
                    gives_way.as_ref().map(|(alive, _)| &**alive),
                    &answer,
                );
            }) {
            Ok(_) => workers.push(Worker { tasks, load }),
            Err(e) => warn!(error = %e, lane = name, "cannot start a worker thread"),
        }
    }
    workers
}

/// The relay thread of lane `name`, at normal priority: it runs the continuations its workers
/// send it, in the order sent. It ends with the last of them. `None` if it cannot be started:
/// the workers then answer themselves.
fn relay(name: &str) -> Option<mpsc::Sender<(Then, Resumed)>> {
    let (tx, rx) = mpsc::channel::<(Then, Resumed)>();
    match std::thread::Builder::new()
        .name(format!("{name}-relay"))
        .spawn(move || {
            for (then, resumed) in rx {
                then(resumed);
            }
        }) {
        Ok(_) => Some(tx),
        Err(e) => {
            warn!(error = %e, lane = name, "cannot start a relay thread");
            None
        }
    }
}

/// Lowers the calling thread's scheduling priority as `yielding` says (Linux sets both per
/// thread; lowering needs no privilege). A refusal costs only the priority: the work runs all
/// the same.
fn lower_priority(yielding: Background) {
    match yielding {
        Background::Idle => {
            use thread_priority::{
                NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                set_thread_priority_and_policy, thread_native_id,
            };
            let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
            // The crate sets the policy, then the nice value, which it cannot raise back to 0
            // in a process started at a higher one: only a policy that did not take is worth a
            // warning.
            if let Err(e) =
                set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
                && thread_priority::thread_schedule_policy().ok() != Some(idle)
            {
                warn!(error = %e, "cannot set a background thread to SCHED_IDLE");
            }
        }
        Background::Nice => {
            if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
                warn!(error = %e, nice = BACKGROUND_NICE, "cannot lower a background thread's priority");
            }
        }
    }
}

fn answer_unsent(task: Task) {
    let (sid, then) = match task {
        Task::Launch { sid, then, .. } | Task::Step { sid, then, .. } => (sid, then),
        Task::Drop { .. } => return,
        #[cfg(test)]
        Task::Has { .. } => return,
    };
    let why = MpcError::Internal("the background worker is gone".into());
    then(Resumed {
        sid,
        ran: Ran::Failed(why),
    });
}

/// One worker thread: the machines homed here, stepped in the order their tasks came.
/// Answers a task's result: through the lane's relay, or at once.
type Answer<'a> = &'a dyn Fn(Then, Resumed);

fn serve(
    tasks: &mpsc::Receiver<Task>,
    load: &AtomicUsize,
    gives_way: Option<&Alive>,
    answer: Answer<'_>,
) {
    let mut machines: HashMap<Sid, Box<dyn Machine>> = HashMap::new();
    for task in tasks {
        let (sid, ran, then) = match task {
            Task::Drop { sid } => {
                drop_contained(machines.remove(&sid));
                continue;
            }
            #[cfg(test)]
            Task::Has { sid, answer } => {
                let _ = answer.send(machines.contains_key(&sid));
                continue;
            }
            Task::Launch {
                sid,
                launch,
                #[cfg(test)]
                gate,
                then,
            } => {
                #[cfg(test)]
                wait(gate.as_deref());
                take_turn(gives_way);
                let ran = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(launch)) {
                    Ok(Ok((machine, first))) => {
                        machines.insert(sid, machine);
                        Ran::Went(first, None)
                    }
                    Ok(Err(e)) => Ran::Failed(e),
                    Err(payload) => panicked(payload.as_ref()),
                };
                (sid, ran, then)
            }
            Task::Step {
                sid,
                messages,
                panic,
                #[cfg(test)]
                gate,
                then,
            } => {
                #[cfg(test)]
                wait(gate.as_deref());
                take_turn(gives_way);
                let ran = match machines.get_mut(&sid) {
                    Some(machine) => step_all(machine.as_mut(), messages, panic),
                    None => Ran::Gone,
                };
                if !matches!(ran, Ran::Went(_, None)) {
                    drop_contained(machines.remove(&sid));
                }
                (sid, ran, then)
            }
        };
        load.fetch_sub(1, Ordering::SeqCst);
        answer(then, Resumed { sid, ran });
    }
}

/// Waits for a task's turn: on the background lane, until no interactive session is alive,
/// for [`MAX_DEFER`] at most.
fn take_turn(gives_way: Option<&Alive>) {
    if let Some(alive) = gives_way {
        alive.give_way(MAX_DEFER);
    }
}

/// A machine's panic, contained to its session, with its reason.
fn panicked(payload: &(dyn std::any::Any + Send)) -> Ran {
    Ran::Panicked(format!(
        "the protocol machine panicked: {}",
        panic_reason(payload)
    ))
}

/// Drops a machine, containing a panic of its drop: a worker thread outlives every machine.
fn drop_contained(machine: Option<Box<dyn Machine>>) {
    if let Some(machine) = machine
        && std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(machine))).is_err()
    {
        warn!("a protocol machine panicked while dropped; contained");
    }
}

/// Feeds `messages` in order; stops at the first that finishes or fails the protocol.
fn step_all(machine: &mut dyn Machine, messages: Vec<IncomingMessage>, panic: bool) -> Ran {
    let mut out = Vec::new();
    let mut inject = panic;
    for msg in messages {
        let injected = std::mem::take(&mut inject);
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if injected {
                panic!("injected panic in a protocol machine");
            }
            machine.step(msg)
        }));
        match stepped {
            Ok(Ok(Step::Continue(more))) => out.extend(more),
            Ok(Ok(Step::Done(product, more))) => {
                out.extend(more);
                return Ran::Went(out, Some(Box::new(product)));
            }
            Ok(Err(e)) => return Ran::Failed(e),
            Err(payload) => return panicked(payload.as_ref()),
        }
    }
    Ran::Went(out, None)
}

/// Tests only: holds every background task sent while it is set until it is opened, so that a
/// test knows a background round is in progress without timing anything.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Gate {
    /// (open, tasks waiting at it).
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

#[cfg(test)]
fn wait(gate: Option<&Gate>) {
    let Some(gate) = gate else { return };
    let mut state = gate.state.lock().unwrap_or_else(|p| p.into_inner());
    state.1 += 1;
    gate.changed.notify_all();
    while !state.0 {
        state = gate.changed.wait(state).unwrap_or_else(|p| p.into_inner());
    }
    state.1 -= 1;
}

#[cfg(test)]
impl Gate {
    /// Waits until `n` tasks are held at the gate.
    pub fn wait_for_held(&self, n: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.1 < n {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The tasks held at the gate now.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Lets every held task (and every later one) run.
    pub fn open(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
        self.changed.notify_all();
    }
}

/// Where a session's machine lives: on the node's thread (online), or on a worker.
pub(super) enum Home {
    Here(Box<dyn Machine>),
    Away(Away),
}

/// A background session's machine on its home thread. Dropping this drops the machine there.
pub(super) struct Away {
    sid: Sid,
    home: Worker,
    /// An interactive session's place among those alive (the background lane gives way).
    alive: Option<Arc<Alive>>,
    pub(super) positional: bool,
    /// Tasks sent and not answered yet: a session working is not idle.
    pub(super) busy: u32,
}

impl Drop for Away {
    fn drop(&mut self) {
        let _ = self.home.tasks.send(Task::Drop { sid: self.sid });
        if let Some(alive) = &self.alive {
            alive.sub();
        }
    }
}

/// A request's answer now, or later: through the [`Then`] it gave, once a worker ran it.
#[derive(Debug)]
pub enum Progress {
    /// Answered now.
    Now(SessionUpdate),
    /// A worker runs it; the answer comes through the request's [`Then`].
    Later,
}

impl Node {
    /// Homes a session on a worker of `lane` and sends it `launch`; `then` answers the start.
    pub(super) fn launch_away(
        &mut self,
        sid: Sid,
        (launch, positional, lane): (Launch, bool, Lane),
        then: Then,
    ) -> Result<Away, NodeError> {
        let home = self
            .pool
            .home(lane)
            .cloned()
            .ok_or_else(|| NodeError::Internal("no worker thread".into()))?;
        let alive = (lane == Lane::Interactive).then(|| self.pool.alive.clone());
        if let Some(alive) = &alive {
            alive.add();
        }
        home.send(Task::Launch {
            sid,
            launch,
            #[cfg(test)]
            gate: self.test.gate.clone(),
            then,
        });
        Ok(Away {
            sid,
            home,
            alive,
            positional,
            busy: 1,
        })
    }

    /// Sends envelopes already opened to a background session's home thread.
    pub(super) fn step_away(
        &mut self,
        away: &mut Away,
        messages: Vec<IncomingMessage>,
        then: Then,
    ) {
        #[cfg(test)]
        let panic = std::mem::take(&mut self.test.panic_next_step);
        #[cfg(not(test))]
        let panic = false;
        away.busy += 1;
        away.home.send(Task::Step {
            sid: away.sid,
            messages,
            panic,
            #[cfg(test)]
            gate: self.test.gate.clone(),
            then,
        });
    }

    /// Finishes, on the node's thread, what a worker ran for a background session: seals its
    /// messages, keeps what it made, and answers the request that sent it.
    pub fn resume(
        &mut self,
        identity: &SecretIdentity,
        resumed: Resumed,
    ) -> Result<SessionUpdate, NodeError> {
        let Resumed { sid, ran } = resumed;
        // Dropped meanwhile (aborted, expired, a retired generation): its result is dropped.
        let Some(mut s) = self.sessions.remove(&sid) else {
            return Err(NodeError::Refused(
                "unknown or finished session (dropped while its round ran)".into(),
            ));
        };
        if let Home::Away(away) = &mut s.machine {
            away.busy = away.busy.saturating_sub(1);
        }
        s.last_active = self.now();
        let outcome = match ran {
            Ran::Went(out, product) => {
                // What it made is kept first, as a step on the node's thread keeps it: if that
                // fails, the session fails and its last messages never leave.
                let done = match product {
                    None => None,
                    Some(product) => match self.complete(&mut s, *product) {
                        Ok(outcome) => Some(outcome),
                        Err(e) => {
                            let culprits = s.culprits(&e);
                            let outcome = failed(FailureCode::Protocol, e.to_string(), culprits);
                            return Ok(self.finish(sid, s, vec![], outcome));
                        }
                    },
                };
                let sealed = match seal_all(identity, &mut s, out) {
                    Ok(sealed) => sealed,
                    Err(e) => {
                        let outcome = failed(FailureCode::Internal, e.to_string(), vec![]);
                        return Ok(self.finish(sid, s, vec![], outcome));
                    }
                };
                let Some(outcome) = done else {
                    self.sessions.insert(sid, s);
                    return Ok(update(sid, sealed, None));
                };
                return Ok(self.finish(sid, s, sealed, outcome));
            }
            Ran::Failed(e) => {
                let culprits = s.culprits(&e);
                failed(FailureCode::Protocol, e.to_string(), culprits)
            }
            Ran::Panicked(reason) => {
                warn!(session = %hex_short(&sid), reason, "panic contained to its session");
                self.note_contained_panic(&reason);
                failed(FailureCode::Internal, reason, vec![])
            }
            Ran::Gone => failed(
                FailureCode::Internal,
                "the session's machine is gone from its worker",
                vec![],
            ),
        };
        Ok(self.finish(sid, s, vec![], outcome))
    }

    /// Delivers `envelopes` to a background session: opens them here, and sends them to its
    /// home thread, which answers through the continuation `then` makes. An envelope that does
    /// not open ends the session, answered at once.
    pub(super) fn deliver_away(
        &mut self,
        identity: &SecretIdentity,
        sid: Sid,
        mut s: Session,
        envelopes: &[PeerEnvelope],
        then: &dyn Fn() -> Then,
    ) -> Progress {
        if envelopes.is_empty() {
            self.sessions.insert(sid, s);
            return Progress::Now(update(sid, vec![], None));
        }
        let mut messages = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            match s.open(identity, envelope) {
                Ok(msg) => messages.push(msg),
                Err(outcome) => return Progress::Now(self.finish(sid, s, vec![], *outcome)),
            }
        }
        let Home::Away(away) = &mut s.machine else {
            let why = "a session on the node's thread was delivered to as a background one";
            let outcome = failed(FailureCode::Internal, why, vec![]);
            return Progress::Now(self.finish(sid, s, vec![], outcome));
        };
        self.step_away(away, messages, then());
        self.sessions.insert(sid, s);
        Progress::Later
    }

    /// The number of worker threads in each lane.
    pub fn workers(&self) -> usize {
        self.pool.size()
    }

    /// Tests only: holds background tasks at `gate` until it opens.
    #[cfg(test)]
    pub fn hold_background(&mut self, gate: Arc<Gate>) {
        self.test.gate = Some(gate);
    }

    /// Tests only: whether session `sid`'s machine lives on a worker of either lane, once
    /// every task sent to them before ran (a worker held at a gate holds this too).
    #[cfg(test)]
    pub fn machine_on_a_worker(&self, sid: Sid) -> bool {
        let pool = &self.pool;
        pool.background.iter().chain(&pool.interactive).any(|w| {
            let (answer, rx) = mpsc::channel();
            let _ = w.tasks.send(Task::Has { sid, answer });
            rx.recv().unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy,
    };

    use super::{BACKGROUND_NICE, Background, lower_priority};

    const IDLE: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);

    /// Each way of yielding takes hold on the thread that asks for it, and on no other.
    #[test]
    fn a_background_thread_yields_as_configured() {
        let (own_policy, own_nice) = (
            thread_schedule_policy().unwrap(),
            rustix::process::getpriority_process(None).unwrap(),
        );
        let idle = std::thread::spawn(|| {
            lower_priority(Background::Idle);
            thread_schedule_policy()
        });
        assert_eq!(idle.join().unwrap().unwrap(), IDLE);

        let nice = std::thread::spawn(|| {
            lower_priority(Background::Nice);
            (
                rustix::process::getpriority_process(None),
                thread_schedule_policy(),
            )
        });
        let (nice, policy) = nice.join().unwrap();
        assert_eq!(nice.unwrap(), BACKGROUND_NICE);
        assert_ne!(policy.unwrap(), IDLE);

        // The thread that started them is as it was.
        assert_eq!(thread_schedule_policy().unwrap(), own_policy);
        assert_eq!(
            rustix::process::getpriority_process(None).unwrap(),
            own_nice
        );
    }
}
