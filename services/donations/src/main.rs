//! `refer-donations`: the donations gRPC service. Configuration from the environment
//! (see `refer_service::runtime::Config`).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    refer_service::runtime::run(
        "donations",
        refer_donations::SERVICE_NAME,
        50052,
        |store, tokens, clock, stop, _config| async move {
            let (service, projection) = refer_donations::start(store, tokens, clock, stop).await?;
            Ok((tonic::service::Routes::new(service), projection))
        },
    )
    .await
}
