//! Helpers for tests that call a service over real gRPC on a free port.

use std::net::SocketAddr;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Request;

/// A service served on 127.0.0.1 on a free port; stops when dropped.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Served {
    pub async fn start(name: &'static str, routes: tonic::service::Routes) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            crate::server::serve(name, routes, listener, shutdown)
                .await
                .expect("serve");
        });
        Self { addr, stop: Some(stop) }
    }

    /// A client channel to the service (connects lazily).
    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect_lazy()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Wraps `message` in a request carrying `Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}
