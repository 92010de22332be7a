//! `refer-capacity`: the capacity gRPC service. Configuration from the
//! environment (see `refer_service::runtime::Config`).
#![forbid(unsafe_code)]

use refer_capacity::{start, SERVICE_NAME};
use refer_service::runtime::Config;
use refer_service::{server, SystemClock, TokenBook};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::from_env("capacity", 50051)?;
    let tokens = TokenBook::load(&config.tokens_file)?;
    let store = config.open_store().await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (service, projection) = start(store, tokens, Arc::new(SystemClock), stopped).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %config.listen, "capacity service listening");
    server::serve(
        SERVICE_NAME,
        tonic::service::Routes::new(service),
        listener,
        server::shutdown_signal(),
    )
    .await?;
    let _ = stop.send(true);
    projection.await?;
    tracing::info!("capacity service stopped");
    Ok(())
}
