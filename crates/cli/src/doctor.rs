//! `refer doctor`: is everything up, and if not, what to do.

use crate::output::table;
use crate::settings::Settings;
use std::time::Duration;

async fn nats(settings: &Settings) -> Result<String, String> {
    let client = match tokio::time::timeout(Duration::from_secs(3), settings.bus()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) if e.to_string().contains("refused the credential") => return Err(format!("{e:#}")),
        _ => {
            return Err(format!(
                "NATS at {} is unreachable: start nats-server with JetStream (-js), or set REFER_NATS_URL",
                settings.nats
            ))
        }
    };
    let js = async_nats::jetstream::new(client);
    match js.get_stream("REFER").await {
        Ok(mut stream) => match stream.info().await {
            Ok(info) => Ok(format!(
                "stream REFER: {} messages, {} consumers",
                info.state.messages, info.state.consumer_count
            )),
            Err(e) => Err(format!("stream REFER unreadable: {e}")),
        },
        Err(_) => Err("JetStream has no REFER stream yet: the operator makes it (`refer admin provision`)".into()),
    }
}

async fn health(settings: &Settings, service: &str, grpc_name: &str, url: &str) -> Result<String, String> {
    let channel = crate::client::channel(settings, service, url)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = tonic_health::pb::HealthCheckRequest {
        service: grpc_name.into(),
    };
    match tokio::time::timeout(Duration::from_secs(3), client.check(check)).await {
        Ok(Ok(r)) if r.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 => {
            Ok(format!("serving at {url}"))
        }
        Ok(Ok(r)) => Err(format!("at {url} but not serving (status {})", r.get_ref().status)),
        Ok(Err(s)) => Err(format!("at {url} the health check failed: {}", s.message())),
        Err(_) => Err(format!("at {url} the health check timed out")),
    }
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let checks = [
        ("nats", nats(settings).await),
        (
            "capacity",
            health(settings, "capacity", "refer.capacity.v1.Capacity", &settings.capacity).await,
        ),
        (
            "donations",
            health(
                settings,
                "donations",
                "refer.donations.v1.Donations",
                &settings.donations,
            )
            .await,
        ),
        (
            "intake",
            health(settings, "intake", "refer.intake.v1.Intake", &settings.intake).await,
        ),
        (
            "matcher",
            health(settings, "matcher", "refer.matcher.v1.Matcher", &settings.matcher).await,
        ),
    ];
    let failed = checks.iter().filter(|(_, r)| r.is_err()).count();
    table(
        settings.json,
        &["check", "status", "detail"],
        checks
            .into_iter()
            .map(|(name, r)| match r {
                Ok(detail) => vec![name.into(), "ok".into(), detail],
                Err(detail) => vec![name.into(), "FAIL".into(), detail],
            })
            .collect(),
    );
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}
