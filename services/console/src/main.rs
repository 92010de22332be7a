//! `refer-console`: the web console (see the crate's docs).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = refer_console::config::Config::from_env()?;
    refer_client::init_tracing(config.json_logs);
    let running = refer_console::launch(&config).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping");
    running.stop().await
}
