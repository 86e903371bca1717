//! Safe primes for CGGMP21 auxiliary info, generated in the background so that no request ever
//! waits on them (20 to 50 seconds of CPU per set on small machines).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::info;

use crate::mpc::ecdsa::SecretPrimes;

/// Tells whether a [`PrimePool`] has a set ready; reveals nothing else.
#[derive(Clone)]
pub struct PrimesProbe(Arc<Mutex<Option<SecretPrimes>>>);

impl PrimesProbe {
    /// Whether a set is ready.
    pub fn ready(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl std::fmt::Debug for PrimesProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrimesProbe {{ ready: {} }}", self.ready())
    }
}

/// Where a test pool's next set comes from.
type Reload = Arc<dyn Fn() -> Option<SecretPrimes> + Send + Sync>;

/// One set of pregenerated primes, refilled in the background after it is taken.
#[derive(Clone, Default)]
pub struct PrimePool {
    ready: Arc<Mutex<Option<SecretPrimes>>>,
    generating: Arc<AtomicBool>,
    refill: bool,
    /// Test fixtures: the committed set again, at once, after each use.
    reload: Option<Reload>,
}

impl std::fmt::Debug for PrimePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimePool")
            .field("ready", &self.ready())
            .field("generating", &self.generating.load(Ordering::Relaxed))
            .finish()
    }
}

impl PrimePool {
    /// A pool that generates on its own thread once [`PrimePool::warm_up`] is called (at
    /// genesis: an enclave that never joins a cluster spends no CPU on primes), and refills
    /// after each use.
    pub fn background() -> Self {
        Self {
            refill: true,
            ..Self::default()
        }
    }

    /// Starts generating now if nothing is ready and nothing is being generated.
    pub fn warm_up(&self) {
        if self.ready() {
            return;
        }
        if let Some(reload) = &self.reload {
            *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = reload();
        } else if self.refill {
            self.spawn_generation();
        }
    }

    /// A pool holding `primes` and never refilling (test fixtures).
    pub fn preloaded(primes: SecretPrimes) -> Self {
        Self {
            ready: Arc::new(Mutex::new(Some(primes))),
            ..Self::default()
        }
    }

    #[cfg(feature = "test-fixtures")]
    /// A pool holding `primes` and taking the next set from `reload` at once after each use
    /// (test fixtures: the committed set again, so that a simulated cluster makes auxiliary
    /// information more than once, as a roster change does, without minutes of prime search).
    pub fn reloading(
        primes: SecretPrimes,
        reload: impl Fn() -> Option<SecretPrimes> + Send + Sync + 'static,
    ) -> Self {
        Self {
            reload: Some(Arc::new(reload)),
            ..Self::preloaded(primes)
        }
    }

    fn spawn_generation(&self) {
        if self.generating.swap(true, Ordering::SeqCst) {
            return;
        }
        let ready = self.ready.clone();
        let generating = self.generating.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            info!("generating safe primes in the background");
            let primes = SecretPrimes::generate();
            info!(
                seconds = started.elapsed().as_secs_f32(),
                "safe primes ready"
            );
            *ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(primes);
            generating.store(false, Ordering::SeqCst);
        });
    }

    /// A handle that tells whether a set is ready, for another thread (status answers).
    pub fn probe(&self) -> PrimesProbe {
        PrimesProbe(self.ready.clone())
    }

    /// Whether a set is ready.
    pub fn ready(&self) -> bool {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Takes the ready set (if any) and starts generating the next.
    pub fn take(&self) -> Option<SecretPrimes> {
        let taken = self.ready.lock().unwrap_or_else(|p| p.into_inner()).take();
        if taken.is_some() {
            if let Some(reload) = &self.reload {
                *self.ready.lock().unwrap_or_else(|p| p.into_inner()) = reload();
            } else if self.refill {
                self.spawn_generation();
            }
        }
        taken
    }
}

#[cfg(all(test, feature = "test-fixtures"))]
mod tests {
    use super::*;

    /// A fixture pool that reloads is ready again after each use (a simulated cluster makes
    /// auxiliary information at the genesis and again at a roster change); a preloaded one is
    /// not.
    #[test]
    fn a_reloading_pool_is_ready_again_after_each_use() {
        let load = || crate::mpc::ecdsa::fixtures::primes(0).ok();
        let pool = PrimePool::reloading(load().unwrap(), load);
        for _ in 0..2 {
            assert!(pool.take().is_some());
            assert!(pool.ready());
        }
        let once = PrimePool::preloaded(load().unwrap());
        assert!(once.take().is_some());
        once.warm_up();
        assert!(!once.ready() && once.take().is_none());
    }
}
