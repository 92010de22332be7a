//! `refer-node <service>`: one of Refer's services (capacity, donations,
//! intake or matcher), started exactly as its own binary's `main` starts
//! it. The fault tests of `tests/` start their replicas through this one
//! binary, which cargo builds for them (a package's tests can name only
//! its own binaries).
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = std::env::args().nth(1).unwrap_or_default();
    let spec = match service.as_str() {
        "capacity" => refer_capacity::SERVICE,
        "donations" => refer_donations::SERVICE,
        "intake" => refer_intake::SERVICE,
        "matcher" => refer_matcher::SERVICE,
        other => anyhow::bail!("refer-node: {other:?} is not a service: capacity, donations, intake or matcher"),
    };
    refer_service::runtime::run(spec).await
}
