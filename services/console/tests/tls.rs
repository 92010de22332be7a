//! The console serves https only, once it has a certificate: a browser's
//! plain http request gets no page; plain http is there only when
//! `tls_plaintext = true` says so, and with neither the console does not
//! start.

use refer_console::config::Config;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(settings: &[(&str, String)]) -> anyhow::Result<Config> {
    let mut all = vec![("REFER_LISTEN", "127.0.0.1:0".to_owned())];
    all.extend(settings.iter().cloned());
    Config::from_sources(None, |key| all.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
}

const SIGN_IN: &[u8] = b"GET /signin HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n";

async fn plain(addr: SocketAddr) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = socket.write_all(SIGN_IN).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn with_a_certificate_the_console_answers_https_and_refuses_plain_http() {
    let keys = refer_testkit::NatsKeys::generate().unwrap();
    let (cert, key) = keys.service_cert();
    let config = config(&[
        ("REFER_TLS_CERT_FILE", cert.display().to_string()),
        ("REFER_TLS_KEY_FILE", key.display().to_string()),
        ("REFER_CA_FILE", keys.ca_file().display().to_string()),
    ])
    .unwrap();
    assert!(config.secure_cookies, "cookies are Secure over https");
    let console = refer_console::launch(&config).await.unwrap();

    let answer = plain(console.addr).await;
    assert!(
        !answer.contains("HTTP/1.1"),
        "the console answered plain http: {answer}"
    );

    let mut tls = refer_service::tls::connect(console.addr, &keys.ca_file(), None)
        .await
        .expect("https");
    tls.write_all(SIGN_IN).await.unwrap();
    let mut page = String::new();
    let _ = tls.read_to_string(&mut page).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("Strict-Transport-Security") || page.contains("strict-transport-security"),
        "{page}"
    );
    console.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_certificate_the_console_starts_only_when_told_plain_http_is_meant() {
    let err = match refer_console::launch(&config(&[]).unwrap()).await {
        Ok(_) => panic!("the console started with neither TLS nor tls_plaintext"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("tls_cert_file") && err.contains("tls_plaintext"), "{err}");

    let keys = refer_testkit::NatsKeys::generate().unwrap();
    let config = config(&[
        ("REFER_TLS_PLAINTEXT", "true".into()),
        ("REFER_CA_FILE", keys.ca_file().display().to_string()),
    ])
    .unwrap();
    let console = refer_console::launch(&config).await.unwrap();
    assert!(plain(console.addr).await.starts_with("HTTP/1.1 200"));
    console.stop().await.unwrap();
}
