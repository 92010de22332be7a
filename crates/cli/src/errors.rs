//! Errors that say what went wrong and what to do.

use tonic::Code;

/// Turns a gRPC status from `service` (at `url`) into advice.
pub fn explain(service: &str, url: &str, status: &tonic::Status) -> String {
    let message = status.message();
    match status.code() {
        Code::Unauthenticated => format!(
            "the {service} service rejected the token ({message}). Use a token from the token file: \
             --token, REFER_TOKEN, or `token` in the config file (`refer admin add-partner` makes one)."
        ),
        Code::PermissionDenied => {
            format!("not allowed: {message}. This token's role or organisation may not do this.")
        }
        Code::InvalidArgument => format!("{message}. Fix that value and try again."),
        Code::FailedPrecondition => format!("{message}."),
        Code::NotFound => format!("{message}: check the id."),
        Code::AlreadyExists => format!("{message}: use a new id (or the same idempotency key to retry)."),
        Code::Aborted => format!("{message} (someone changed it first: show it again, then retry)"),
        Code::Unavailable if message.contains("bus") => {
            format!("{message}. NATS is unreachable from the {service} service; `refer doctor` checks it.")
        }
        Code::Unavailable | Code::Unknown => format!(
            "cannot reach the {service} service at {url} ({message}). Is it running? `refer doctor` checks every service."
        ),
        _ => format!("the {service} service failed: {message}"),
    }
}
