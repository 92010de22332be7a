//! Encryption at rest, attacked from the disk: someone with a copy of a
//! node's store directory (a stolen disk, a backup) but not the store's key
//! reads nothing of what was written; the same on an unencrypted store shows
//! it all (the control: the search itself works).

use refer_testkit::{NatsServer, ServerOptions};

/// Whether `needle` occurs in any file under `dir`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found |= on_disk(&path, needle);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

/// Writes a marked event and its subject, as a service would, and stops
/// the server so everything it holds is on disk.
async fn written(options: ServerOptions) -> (NatsServer, bool, bool) {
    let mut nats = NatsServer::start_with(options).await.unwrap();
    let js = async_nats::jetstream::new(nats.connect().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "REFER".into(),
        subjects: vec!["refer.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("refer.need.MARKED-SUBJECT-4711", "MARKED-PAYLOAD-need.accepted".into())
        .await
        .unwrap()
        .await
        .unwrap();
    nats.kill();
    let dir = nats.store_dir();
    let payload = on_disk(&dir, b"MARKED-PAYLOAD");
    let subject = on_disk(&dir, b"MARKED-SUBJECT");
    (nats, payload, subject)
}

#[tokio::test]
async fn a_stolen_store_shows_no_event_without_the_store_key() {
    let (_plain, payload, subject) = written(ServerOptions::unencrypted()).await;
    assert!(payload && subject, "the control: an unencrypted store shows the event");
    let (_encrypted, payload, subject) = written(ServerOptions::default()).await;
    assert!(!payload, "the payload is on the encrypted store's disk in clear");
    assert!(
        !subject,
        "the subject (an aggregate's id) is on the encrypted store's disk in clear"
    );
}
