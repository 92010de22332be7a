//! `refer-intake`: the intake gRPC service. Configuration from the environment
//! (see `refer_service::runtime::Config`).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    refer_service::runtime::run(
        "intake",
        refer_intake::SERVICE_NAME,
        50053,
        |store, tokens, clock, stop, _config| async move {
            let (service, projection) = refer_intake::start(store, tokens, clock, stop).await?;
            Ok((tonic::service::Routes::new(service), projection))
        },
    )
    .await
}
