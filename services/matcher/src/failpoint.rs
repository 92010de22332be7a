//! A fault the tests inject into real matcher processes. With
//! `REFER_TEST_PAUSE_MID_RETRY=<file>` in its environment, a matcher whose
//! commit of several proposals lost a race and is about to try again stops
//! itself (SIGSTOP, as `kill -STOP` from outside would) if `<file>` exists,
//! just before the fence is checked: the moment at which a leader woken
//! after losing its lease would do the most harm. It removes the file
//! first, so one process pauses once per file the test creates
//! (`tests/tests/cluster.rs`). Unset, or with no such file, it does nothing.

use std::path::PathBuf;

/// The environment variable that names the file arming the pause.
pub const PAUSE_MID_RETRY: &str = "REFER_TEST_PAUSE_MID_RETRY";

#[derive(Clone, Default)]
pub struct Failpoint {
    armed_by: Option<PathBuf>,
}

impl Failpoint {
    pub fn from_env() -> Self {
        Self {
            armed_by: std::env::var_os(PAUSE_MID_RETRY).map(PathBuf::from),
        }
    }

    /// Stops this process if the arming file exists (and removes it).
    pub fn pause_mid_retry(&self, proposals: usize) {
        let Some(file) = &self.armed_by else { return };
        if std::fs::remove_file(file).is_ok() {
            tracing::warn!(proposals, "failpoint: pausing mid-retry of a multi-proposal commit");
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-STOP", &pid]).status();
        }
    }
}
