//! `refer-matcher`: the matcher. Configuration: see `refer_service::runtime::Config`
//! (`tick_ms` / `REFER_TICK_MS` sets how often referral deadlines are checked).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    refer_service::runtime::run(refer_matcher::SERVICE).await
}
