//! A `cohort-coordinator` process for the tests that start one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `cohort-coordinator` process, killed when dropped; its output goes to files.
pub struct Coordinator {
    child: Child,
    /// Its directory: data, address file, output.
    pub dir: tempfile::TempDir,
}

impl Coordinator {
    /// Starts one with no nodes to reach (`--proxy` to a closed port) and `args`.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cohort-coordinator"))
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(dir.path().join("addr"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--proxy", "http://127.0.0.1:9", "--pcr0", &"00".repeat(48)])
            .args(args)
            .env_remove("COHORT_COORDINATOR_STORE_TLS")
            .env_remove("COHORT_COORDINATOR_STORE_CA")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Self { child, dir }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap();
        format!("{}{}", read("stdout"), read("stderr"))
    }

    /// Waits until it listens (`Ok(address)`) or exits (`Err(code)`). The deadline only guards
    /// against a hang; nothing is measured.
    pub fn listening_or_exited(&mut self) -> Result<String, Option<i32>> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(status.code());
            }
            if let Ok(addr) = std::fs::read_to_string(self.dir.path().join("addr"))
                && !addr.trim().is_empty()
            {
                return Ok(addr.trim().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "the coordinator neither listens nor exits: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
