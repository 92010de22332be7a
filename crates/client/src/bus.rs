//! How a process reaches the bus: its URLs, its credential (an nkey seed
//! in a file), TLS against the bus's CA, and reply inboxes of its own.
//! Services, the console and the CLI's admin commands connect alike.

use std::path::PathBuf;
use std::time::Duration;

/// How a process reaches the bus: where, as whom, and how it checks it is
/// talking to the bus (docs/operations.md, "Credentials").
#[derive(Clone, Debug, Default)]
pub struct Bus {
    /// NATS URLs, comma-separated for a cluster.
    pub url: String,
    /// The process's nkey seed (deploy/nats/auth.conf).
    pub nkey_file: Option<PathBuf>,
    /// The CA the nodes' certificates are verified against: TLS required.
    pub ca_file: Option<PathBuf>,
    /// No TLS: local development only.
    pub plaintext: bool,
    /// The prefix of this process's reply inboxes (`inbox_of` its role):
    /// each credential may subscribe to its own role's inboxes only
    /// (deploy/nats/auth.conf), so no process reads the replies and
    /// deliveries of another, the sealed keys a sealing service reads
    /// among them.
    pub inbox: String,
}

/// The reply-inbox prefix of a process with `role`'s credential
/// (`capacity`, `console`, `operator`, ...).
pub fn inbox_of(role: &str) -> String {
    format!("_INBOX_{role}")
}

/// A client of the bus (a node down at start does not matter, and the
/// client moves to another when its node goes), reconnecting with
/// [`reconnect_delay`]. TLS is required and verified against `ca_file`,
/// unless `plaintext` says otherwise (loudly); a bus that refuses the
/// credential or the connection's security stops the caller at once.
pub async fn connect(bus: &Bus) -> anyhow::Result<async_nats::Client> {
    let nats_url = &bus.url;
    let servers = nats_url
        .split(',')
        .map(|url| url.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{nats_url:?} is not a list of NATS URLs: {e}"))?;
    let seed = match &bus.nkey_file {
        Some(path) => Some(read_nkey_seed(path)?),
        None => {
            tracing::warn!("connecting to NATS with no credential (nats_nkey_file is not set)");
            None
        }
    };
    match (&bus.ca_file, bus.plaintext) {
        (Some(ca), _) if !ca.exists() => anyhow::bail!("nats_ca_file {}: no such file", ca.display()),
        (Some(_), _) => {}
        (None, true) => tracing::warn!(
            "NATS WITHOUT TLS (nats_plaintext = true): events and credentials cross the network in clear; \
             local development only"
        ),
        (None, false) => anyhow::bail!(
            "no TLS to NATS: set nats_ca_file (REFER_NATS_CA_FILE) to the CA of the bus's certificates, \
             or nats_plaintext = true for local development only"
        ),
    }
    let options = || {
        // A node that stalls (SIGSTOP, a frozen VM) keeps its socket open
        // and silent: only unanswered pings tell, and the client moves to
        // another node after the third. At the default 60 s, a service tied
        // to a stalled node was deaf for two minutes; at 2 s it moves
        // within about 6 s, before a lease or a consumer gives up on it.
        let mut options = async_nats::ConnectOptions::new()
            .reconnect_delay_callback(reconnect_delay)
            .ping_interval(PING_INTERVAL)
            .custom_inbox_prefix(bus.inbox.clone());
        if let Some(seed) = &seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &bus.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        options
    };
    // One attempt first: a bus that refuses the credential or the TLS says
    // so now (retrying in the background, as below, would hide it).
    match options()
        .connection_timeout(Duration::from_secs(2))
        .connect(servers.clone())
        .await
    {
        Ok(client) => Ok(client),
        Err(e) if refused(&e) => Err(anyhow::anyhow!(
            "NATS at {nats_url} refused this process, or its TLS certificate is not one nats_ca_file vouches for \
             (nats_nkey_file, nats_ca_file): {}",
            chain(&e)
        )),
        // Not there yet: connect in the background, commands answer
        // UNAVAILABLE meanwhile.
        Err(_) => options()
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach NATS at {nats_url}: {e}")),
    }
}

/// Whether a first connection failed for good: the credential refused, or
/// TLS failing (a certificate no CA of ours signed is a forged bus, not a
/// busy one). async-nats reports a failed handshake as an I/O error, so its
/// words are read too.
fn refused(e: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind::*;
    matches!(e.kind(), AuthorizationViolation | Authentication | Tls) || {
        let words = chain(e).to_lowercase();
        words.contains("certificate") || words.contains("tls")
    }
}

/// An error and every error under it, in words.
fn chain(e: &dyn std::error::Error) -> String {
    let mut words = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        words += &format!(": {inner}");
        source = inner.source();
    }
    words
}

/// The nkey seed in `path` (a line starting `SU`), never echoed.
pub fn read_nkey_seed(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("nats_nkey_file {}: cannot be read: {e}", path.display()))?;
    let seed = text.trim();
    if !seed.starts_with("SU") || seed.len() != 58 {
        anyhow::bail!(
            "nats_nkey_file {}: must hold a user nkey seed (58 characters starting SU; `refer admin nats-key`)",
            path.display()
        );
    }
    Ok(seed.to_owned())
}

/// How often a service pings its NATS node; the third ping unanswered
/// drops the connection and the client dials another node.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// How long to wait before reconnect attempt `attempt` to the bus: doubling
/// from 25 ms to 400 ms, plus up to 100 ms of jitter so that services do not
/// reconnect in step. At most half a second: once the bus is back, the
/// services are within half a second.
pub fn reconnect_delay(attempt: usize) -> Duration {
    let base = 25u64 << attempt.min(4);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % 100;
    Duration::from_millis(base.min(400) + jitter)
}

/// How many copies of a stream or bucket a setting asks for: 1 to 5 (a
/// JetStream cluster's limit), 1 when unset; `setting` is the value and
/// where it came from.
pub fn replicas(setting: Option<(String, String)>) -> anyhow::Result<usize> {
    match setting {
        None => Ok(1),
        Some((text, from)) => text
            .parse()
            .ok()
            .filter(|r| (1..=5).contains(r))
            .ok_or_else(|| anyhow::anyhow!("{from}={text:?} must be 1 to 5")),
    }
}
