//! `refer-matcher`: the matcher. Configuration from the environment (see
//! `refer_service::runtime::Config`); `REFER_TICK_MS` sets how often expiry
//! is checked (default 1000).
#![forbid(unsafe_code)]

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tick = std::env::var("REFER_TICK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    refer_service::runtime::run(
        "matcher",
        refer_matcher::SERVICE_NAME,
        50054,
        |store, tokens, clock, stop| async move {
            let (service, task) = refer_matcher::start(store, tokens, clock, stop, Duration::from_millis(tick)).await?;
            Ok((tonic::service::Routes::new(service), task))
        },
    )
    .await
}
