//! Serving a gRPC service the same way everywhere: a span per RPC carrying the
//! correlation id, the standard health and reflection services, a cap on
//! message sizes, and graceful shutdown on SIGINT/SIGTERM.

use refer_domain::ids::CorrelationId;
use std::time::Duration;
use tonic::codegen::http;
use tonic::metadata::MetadataMap;
use tonic::transport::Server;

/// No request larger than this is decoded (a group of 100 people is ~30 KiB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The metadata key a client may set to tie its requests together in logs.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The fields of `google.protobuf.FileDescriptorSet` that name methods:
/// enough to list every method Refer's protos define.
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Set {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<File>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct File {
        #[prost(string, optional, tag = "2")]
        pub package: Option<String>,
        #[prost(message, repeated, tag = "6")]
        pub service: Vec<Service>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Service {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub method: Vec<Method>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Method {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
    }
}

/// Whether `path` is a method some service serves: one of Refer's protos,
/// health or reflection.
fn served(path: &str) -> bool {
    static PATHS: std::sync::OnceLock<std::collections::BTreeSet<String>> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        let set = <descriptor::Set as prost::Message>::decode(refer_proto::FILE_DESCRIPTOR_SET)
            .expect("the protos' own descriptor set decodes");
        set.file
            .iter()
            .flat_map(|file| {
                let package = file.package.clone().unwrap_or_default();
                file.service.iter().flat_map(move |service| {
                    let name = format!("{package}.{}", service.name.clone().unwrap_or_default());
                    service
                        .method
                        .iter()
                        .map(move |m| format!("/{name}/{}", m.name.clone().unwrap_or_default()))
                })
            })
            .collect()
    });
    const STANDARD: [&str; 4] = [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];
    paths.contains(path) || STANDARD.contains(&path)
}

/// Gives each RPC a correlation id (the client's `x-correlation-id` when it
/// is a UUID, else a fresh one, written back into the request so the events
/// it causes carry the same id), a tracing span with the method and that id,
/// and metrics: a count by method and status code, and its duration.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcLayer;

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Rpc<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        use tracing::Instrument;
        let method = request.uri().path().to_owned();
        let given = request
            .headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let correlation: uuid::Uuid = given.unwrap_or_else(|| {
            let fresh = uuid::Uuid::new_v4();
            let value = http::HeaderValue::from_str(&fresh.to_string()).expect("a uuid is a header value");
            request.headers_mut().insert(CORRELATION_HEADER, value);
            fresh
        });
        let span = tracing::info_span!("rpc", method = %method, correlation_id = %correlation);
        let started = std::time::Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let response = response.await.map(oversized_is_resource_exhausted);
                // Errors travel as a trailers-only response with `grpc-status` in
                // the headers; a success sets it in the trailers, so absent means 0.
                let code = match &response {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                // A path no service serves is counted as one: any caller,
                // signed in or not, may send any path, and a series per
                // path would grow without bound.
                let method = if served(&method) { method } else { "unknown".to_owned() };
                refer_metrics::count(
                    "refer_rpc_requests_total",
                    "RPCs served, by method and gRPC status code.",
                    &[("method", &method), ("code", &code)],
                    1.0,
                );
                refer_metrics::observe(
                    "refer_rpc_duration_seconds",
                    "Time to answer an RPC (to the first message for streams).",
                    &[("method", &method)],
                    started.elapsed(),
                );
                response
            }
            .instrument(span),
        )
    }
}

/// tonic refuses a request over the size cap with OUT_OF_RANGE before any
/// handler runs; gRPC's code for it, and the one Refer documents, is
/// RESOURCE_EXHAUSTED. (No Refer handler answers OUT_OF_RANGE.)
fn oversized_is_resource_exhausted<R>(mut response: http::Response<R>) -> http::Response<R> {
    let headers = response.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if oversized {
        let message = format!("the request is larger than the {MAX_REQUEST_BYTES} bytes accepted");
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_str(&message.replace(' ', "%20")).expect("ascii"),
        );
    }
    response
}

/// A server builder with a correlation id, a tracing span and metrics per RPC, and sane limits.
pub fn builder() -> Server<tower::layer::util::Stack<RpcLayer, tower::layer::util::Identity>> {
    Server::builder()
        .timeout(Duration::from_secs(30))
        .concurrency_limit_per_connection(256)
        .layer(RpcLayer)
}

/// Serves `routes` on `listener` until `shutdown` resolves, with the
/// standard gRPC health service (reporting `name` NOT_SERVING until
/// `ready` turns true, then SERVING) and the
/// reflection service describing every Refer contract, so generic tools
/// (grpcurl, grpc_health_probe) can list and call the APIs.
pub async fn serve(
    name: &'static str,
    routes: tonic::service::Routes,
    listener: tokio::net::TcpListener,
    tls: crate::tls::Listening,
    mut ready: tokio::sync::watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let status = |ready: bool| match ready {
        true => tonic_health::ServingStatus::Serving,
        false => tonic_health::ServingStatus::NotServing,
    };
    let now = *ready.borrow_and_update();
    reporter.set_service_status(name, status(now)).await;
    // The overall status ("") too: probes that name no service ask it.
    reporter.set_service_status("", status(now)).await;
    if !now {
        tokio::spawn(async move {
            if ready.wait_for(|ready| *ready).await.is_ok() {
                reporter.set_service_status(name, status(true)).await;
                reporter.set_service_status("", status(true)).await;
            }
        });
    }
    // Both reflection versions: grpcurl speaks v1, older tools only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(refer_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = reflection().build_v1().expect("the compiled descriptor set is valid");
    let v1alpha = reflection()
        .build_v1alpha()
        .expect("the compiled descriptor set is valid");
    let routes = routes.add_service(health).add_service(v1).add_service(v1alpha);
    // A listener handed in gets none of the builder's socket options: without
    // TCP_NODELAY a streamed referral waits ~40 ms for the client's delayed ack.
    match tls {
        crate::tls::Listening::Tls(acceptor) => {
            builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(acceptor.incoming(listener, true).into_stream(), shutdown)
                .await
        }
        crate::tls::Listening::Plaintext => {
            builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shutdown,
                )
                .await
        }
    }
}

/// The request's correlation id: the client's `x-correlation-id` when it is a
/// UUID, else a fresh one.
pub fn correlation_id(metadata: &MetadataMap) -> CorrelationId {
    metadata
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| CorrelationId::from_uuid(uuid::Uuid::new_v4()))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}

pub use refer_client::init_tracing;

/// The metadata of a command a user sent: now, the request's correlation id,
/// its idempotency key, caused by no earlier event.
pub fn command_meta<T>(
    request: &tonic::Request<T>,
    clock: &dyn crate::Clock,
    key: refer_domain::IdempotencyKey,
) -> refer_domain::CommandMeta {
    refer_domain::CommandMeta {
        occurred_at: clock.now(),
        correlation_id: correlation_id(request.metadata()),
        causation_id: None,
        idempotency_key: Some(key),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_protos_methods_are_served_and_made_up_paths_are_not() {
        assert!(super::served("/refer.capacity.v1.Capacity/GetProvider"));
        assert!(super::served("/refer.intake.v1.Intake/RequestGroup"));
        assert!(super::served("/grpc.health.v1.Health/Check"));
        assert!(!super::served("/refer.capacity.v1.Capacity/Made-Up-1"));
        assert!(!super::served("/grpc.health.v1.Health/Made-Up-2"));
        assert!(!super::served("/x/y"));
    }
}
