//! Waiting at start. Services started together on a new cluster, or while
//! a node is stalled or dead and the bus elects, find their stream, buckets
//! and consumers unanswered for a while: each step of a start tries again
//! instead of exiting, for at most [`START_PATIENCE`]. A try still under
//! way when the patience runs out is cut off, so a step gives up after
//! [`START_PATIENCE`], not that plus a request timeout.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long each step of a start waits for the bus.
pub const START_PATIENCE: Duration = Duration::from_secs(30);

/// What a step that ran out of patience says: what went unanswered, and
/// the likely cause an operator can look at.
pub fn unanswered(what: &str) -> String {
    format!(
        "{what}: the event bus gave no answer within {}s of trying (a NATS node stalled or \
         dead, or the cluster without a quorum?)",
        START_PATIENCE.as_secs()
    )
}

/// How long between tries.
const PAUSE: Duration = Duration::from_millis(500);

/// Runs `attempt` until it succeeds, fails in a way `transient` says no
/// wait will mend, or [`START_PATIENCE`] has passed; then gives its last
/// error, or `cut_off()` if the patience ran out during a try. `what` names
/// the step in the log.
pub async fn patiently<T, E, Fut>(
    what: &str,
    attempt: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
    cut_off: impl FnOnce() -> E,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    patiently_for(START_PATIENCE, what, attempt, transient, cut_off).await
}

async fn patiently_for<T, E, Fut>(
    patience: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
    cut_off: impl FnOnce() -> E,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let until = Instant::now() + patience;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, attempt()).await {
            Err(_) => return Err(cut_off()),
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(e)) if transient(&e) && Instant::now() + PAUSE < until => {
                tracing::warn!(error = %e, "{what} not ready; trying again");
                tokio::time::sleep(PAUSE).await;
            }
            Ok(Err(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_millis(1500);

    #[tokio::test]
    async fn a_try_that_hangs_is_cut_off_when_the_patience_runs_out() {
        let started = Instant::now();
        let got: Result<(), String> = patiently_for(
            PATIENCE,
            "hanging",
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err("timed out".to_string())
            },
            |_| true,
            || "cut off".to_string(),
        )
        .await;
        assert_eq!(got, Err("cut off".to_string()));
        let waited = started.elapsed();
        assert!(
            waited >= PATIENCE && waited < Duration::from_secs(30),
            "cut off, not waited for: {waited:?}"
        );
    }

    #[tokio::test]
    async fn a_lasting_refusal_is_said_at_once_and_a_passing_one_waited_for() {
        let refused: Result<(), String> = patiently_for(
            PATIENCE,
            "refused",
            || async { Err("permission".to_string()) },
            |_| false,
            || "cut off".into(),
        )
        .await;
        assert_eq!(refused, Err("permission".to_string()));
        let mut tries = 0;
        let electing: Result<u32, String> = patiently_for(
            PATIENCE,
            "electing",
            || {
                tries += 1;
                let now = tries;
                async move {
                    if now < 3 {
                        Err("no leader".to_string())
                    } else {
                        Ok(now)
                    }
                }
            },
            |_| true,
            || "cut off".into(),
        )
        .await;
        assert_eq!(electing, Ok(3));
        let lasting: Result<(), String> = patiently_for(
            PATIENCE,
            "dead",
            || async { Err("no leader".to_string()) },
            |_| true,
            || "cut off".into(),
        )
        .await;
        assert_eq!(
            lasting,
            Err("no leader".to_string()),
            "the last error, once the patience ran out"
        );
    }
}
