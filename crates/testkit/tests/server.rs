//! The harness itself: a private server with JetStream, isolated per test.

use refer_testkit::NatsServer;

#[tokio::test]
async fn each_server_is_private_and_has_jetstream() {
    let a = NatsServer::start().await.unwrap();
    let b = NatsServer::start().await.unwrap();
    assert_ne!(a.url(), b.url());
    let js = async_nats::jetstream::new(a.connect().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ONLY_ON_A".into(),
        subjects: vec!["a.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let js_b = async_nats::jetstream::new(b.connect().await);
    assert!(js_b.get_stream("ONLY_ON_A").await.is_err(), "servers share no state");
    assert!(a.log().contains("JetStream"), "log is readable");
}

#[tokio::test]
async fn a_killed_server_restarts_with_its_data() {
    let mut server = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(server.connect().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KEEP".into(),
        subjects: vec!["keep.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("keep.x", "1".into()).await.unwrap().await.unwrap();
    server.kill();
    server.restart().await.unwrap();
    let js = async_nats::jetstream::new(server.connect().await);
    let mut stream = js.get_stream("KEEP").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}
