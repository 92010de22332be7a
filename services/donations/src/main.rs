//! `refer-donations`: the donations gRPC service. Configuration from the environment
//! (see `refer_service::runtime::Config`).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    refer_service::runtime::run(refer_donations::SERVICE).await
}
