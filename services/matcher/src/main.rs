//! `refer-matcher`: the matcher. Configuration: see `refer_service::runtime::Config`
//! (`tick_ms` / `REFER_TICK_MS` sets how often referral deadlines are checked).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    refer_service::runtime::run(
        "matcher",
        refer_matcher::SERVICE_NAME,
        50054,
        |store, tokens, clock, stop, config| async move {
            let (service, task) = refer_matcher::start(store, tokens, clock, stop, config.tick).await?;
            Ok((tonic::service::Routes::new(service), task))
        },
    )
    .await
}
