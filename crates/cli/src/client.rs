//! Connecting to a service, with a clear error when it is not there.

use crate::settings::Settings;
use tonic::transport::Channel;
use tonic::Request;

/// A channel to the first replica of `service` that answers: `urls` may
/// list several, comma-separated (`https://a:50053,https://b:50053`).
/// `https://` addresses are verified against `--ca-file`; an `http://` one
/// is plaintext, said on stderr.
pub async fn channel(settings: &Settings, service: &str, urls: &str) -> anyhow::Result<Channel> {
    let mut failures = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        if url.starts_with("http://") {
            eprintln!("warning: {url} is plaintext: the token crosses the network in clear (local development only)");
        }
        let endpoint = settings
            .tls
            .endpoint(url, "--ca-file (REFER_CA_FILE)")
            .map_err(|e| {
                anyhow::anyhow!(
                    "{url:?} is not a usable address for the {service} service (like https://127.0.0.1:50051): {e}"
                )
            })?
            .connect_timeout(std::time::Duration::from_secs(3));
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => failures.push(format!("{url} ({e})")),
        }
    }
    anyhow::bail!(
        "cannot reach the {service} service at {}. Is it running? Set its address with \
         --{service} or REFER_{}_URL (several, comma-separated, for replicas); `refer doctor` checks every service.",
        failures.join(", "),
        service.to_uppercase()
    )
}

/// A request carrying the configured token and a fresh correlation id.
pub fn request<T>(settings: &Settings, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    let token = settings.token()?;
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow::anyhow!("the token has characters a header cannot carry"))?,
    );
    let correlation = uuid::Uuid::new_v4().to_string();
    request
        .metadata_mut()
        .insert("x-correlation-id", correlation.parse().expect("a uuid is ascii"));
    Ok(request)
}

/// A fresh idempotency key, unless the user gave one (to retry safely).
pub fn key(given: &Option<String>) -> String {
    given
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}
