//! Who is calling: a bearer token mapped to a role and an organisation.
//!
//! Tokens are configured in a TOML file (path in `REFER_TOKENS_FILE`), stored
//! only as SHA-256 hashes:
//!
//! ```toml
//! [[token]]
//! name = "harbor-house-coordinator"   # for logs; never the token itself
//! role = "provider"                   # intake | provider | business | admin
//! org = "6f1c0a7e-0b1d-4c47-9a51-5c6f0e3b2a10"
//! sha256 = "<hex sha256 of the token>"
//! ```
//!
//! Every RPC authenticates first, then checks the role and organisation on
//! the server; the client's word is never taken for either. Authentication
//! is an interceptor ([`Authenticate`]) in front of each service: it runs
//! before the request is decoded, so no handler can forget it and no
//! validation answers an unauthenticated caller. Handlers read the caller
//! with [`caller`].

pub use refer_client::tokens::{add_partner, authed, hash_token, partners, Partner, Role};
use refer_domain::ids::OrgId;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tonic::codegen::http;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub org: OrgId,
}

impl Principal {
    /// PERMISSION_DENIED unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Status> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "the {:?} role may not call this",
                self.role
            )))
        }
    }

    /// Whether the caller may act for `org` (its own, or any as admin).
    pub fn acts_for(&self, org: OrgId) -> bool {
        self.role == Role::Admin || self.org == org
    }

    /// The organisation a registration is for: an admin names it in
    /// `value` (required); anyone else registers for their own, and naming
    /// another is PERMISSION_DENIED (never silently their own: a caller that
    /// meant another organisation must learn it did not happen).
    pub fn registers_for(&self, value: &str, field: &str) -> Result<OrgId, Status> {
        let named = || crate::convert::id(value, field).map(OrgId::from_uuid);
        match self.role {
            Role::Admin => named(),
            _ if value.trim().is_empty() => Ok(self.org),
            _ if named()? == self.org => Ok(self.org),
            _ => Err(Status::permission_denied(format!(
                "{field}: names another organisation; a partner registers for its own (leave it empty)"
            ))),
        }
    }

    /// NOT_FOUND ("no such `what`") unless the object exists (`owner` is
    /// known) and the caller may act for its owner. Another organisation's
    /// object answers in the words an unknown id gets, so the answer never
    /// confirms that the id exists.
    pub fn sees(&self, owner: Option<OrgId>, what: &str) -> Result<(), Status> {
        match owner {
            Some(org) if self.acts_for(org) => Ok(()),
            _ => Err(Status::not_found(format!("no such {what}"))),
        }
    }
}

/// The interceptor in front of every Refer service: UNAUTHENTICATED without
/// a known token, PERMISSION_DENIED for a role the service does not serve;
/// otherwise the caller goes into the request's extensions for [`caller`].
#[derive(Clone, Debug)]
pub struct Authenticate {
    tokens: TokenBook,
    roles: &'static [Role],
    /// Whether the replica has caught up with the stream (`None`: always).
    ready: Option<tokio::sync::watch::Receiver<bool>>,
    /// Whether its instance name was confirmed lately (`None`: always).
    named: Option<crate::lease::Fence>,
}

impl Authenticate {
    pub fn new(tokens: TokenBook, roles: &'static [Role]) -> Self {
        Self {
            tokens,
            roles,
            ready: None,
            named: None,
        }
    }

    /// Answers every call UNAVAILABLE while the replica's instance name is
    /// not confirmed (`refer_service::identity`): woken from a stall, it
    /// may have been taken by another process meanwhile.
    pub fn while_named(mut self, named: crate::lease::Fence) -> Self {
        self.named = Some(named);
        self
    }

    /// Answers every call UNAVAILABLE until `ready` turns true: a replica
    /// whose read model has not caught up with the stream would answer
    /// NOT_FOUND for objects that exist.
    pub fn until_ready(mut self, ready: tokio::sync::watch::Receiver<bool>) -> Self {
        self.ready = Some(ready);
        self
    }
}

/// What a replica answers while it catches up with the stream at start.
pub const CATCHING_UP: &str = "this replica is catching up with the stream; retry (another replica may answer)";

/// What a replica answers while its instance name is not confirmed.
pub const UNCONFIRMED: &str =
    "this replica is confirming its instance name after a stall; retry (another replica may answer)";

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.ready.as_ref().is_some_and(|ready| !*ready.borrow()) {
            return Err(Status::unavailable(CATCHING_UP));
        }
        if self.named.as_ref().is_some_and(|named| !named.held()) {
            return Err(Status::unavailable(UNCONFIRMED));
        }
        let who = self.tokens.authenticate(request.metadata())?;
        who.require(self.roles)?;
        request.extensions_mut().insert(who);
        Ok(request)
    }
}

/// A narrower rule for some methods of a service: behind [`Authenticate`]
/// (which admits every role the service serves), each method listed admits
/// only its own roles; every other method admits `default`. It reads the
/// caller [`Authenticate`] put into the request and the method from the
/// path, so it too refuses before the body is decoded.
#[derive(Clone)]
pub struct MethodRoles<S> {
    inner: S,
    default: &'static [Role],
    methods: &'static [(&'static str, &'static [Role])],
}

impl<S> MethodRoles<S> {
    pub fn new(inner: S, default: &'static [Role], methods: &'static [(&'static str, &'static [Role])]) -> Self {
        Self {
            inner,
            default,
            methods,
        }
    }

    fn admits(&self, path: &str, who: Option<&Principal>) -> Result<(), Status> {
        let method = path.rsplit('/').next().unwrap_or_default();
        let roles = self
            .methods
            .iter()
            .find(|(name, _)| *name == method)
            .map_or(self.default, |(_, roles)| roles);
        who.ok_or_else(|| Status::internal("the service is served without authentication"))?
            .require(roles)
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for MethodRoles<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for MethodRoles<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.admits(request.uri().path(), request.extensions().get::<Principal>()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// The caller [`Authenticate`] put into the request. A service served
/// without the interceptor answers INTERNAL rather than serve anyone.
pub fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::internal("the service is served without authentication"))
}

#[derive(Debug, thiserror::Error)]
pub enum TokenBookError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("token file: {0}")]
    Parse(String),
}

type Book = HashMap<[u8; 32], Principal>;

/// The configured tokens, by hash. Clones share the book, so a reload (see
/// `watch_file`) reaches every service handler at once.
#[derive(Clone, Debug, Default)]
pub struct TokenBook {
    by_hash: Arc<RwLock<Arc<Book>>>,
}

impl TokenBook {
    pub fn load(path: &Path) -> Result<Self, TokenBookError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenBookError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, TokenBookError> {
        let by_hash = refer_client::tokens::parse(text)
            .map_err(TokenBookError::Parse)?
            .into_iter()
            .map(|entry| {
                let principal = Principal {
                    name: entry.name,
                    role: entry.role,
                    org: entry.org,
                };
                (entry.sha256, principal)
            })
            .collect();
        Ok(Self::with(by_hash))
    }

    fn with(book: Book) -> Self {
        Self {
            by_hash: Arc::new(RwLock::new(Arc::new(book))),
        }
    }

    /// Re-reads the token file when it changes (checked every 2 s), so a
    /// partner added with `refer admin add-partner` can call at once. A file
    /// that no longer parses is logged and the previous tokens stay in force.
    pub fn watch_file(&self, path: std::path::PathBuf) -> tokio::task::JoinHandle<()> {
        let book = self.clone();
        tokio::spawn(async move {
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut seen = modified(&path);
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match Self::load(&path) {
                    Ok(fresh) => {
                        let fresh = fresh.by_hash.read().expect("token lock").clone();
                        tracing::info!(tokens = fresh.len(), "token file reloaded");
                        *book.by_hash.write().expect("token lock") = fresh;
                    }
                    Err(err) => tracing::error!(error = %err, "token file not reloaded; keeping the previous tokens"),
                }
            }
        })
    }

    /// Builds a book from `(token, role, org, name)` in memory (tests, demos).
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = (&'a str, Role, OrgId, &'a str)>) -> Self {
        let by_hash = tokens
            .into_iter()
            .map(|(token, role, org, name)| {
                (
                    Sha256::digest(token.as_bytes()).into(),
                    Principal {
                        name: name.to_owned(),
                        role,
                        org,
                    },
                )
            })
            .collect();
        Self::with(by_hash)
    }

    /// Reads `authorization: Bearer <token>`: UNAUTHENTICATED when missing or unknown.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization metadata (Bearer token)"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let hash: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let book = self.by_hash.read().expect("token lock").clone();
        book.get(&hash)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn a_token_file_maps_hashed_tokens_to_principals() {
        let org = "6f1c0a7e-0b1d-4c47-9a51-5c6f0e3b2a10";
        let text = format!(
            "[[token]]\nname = \"coordinator\"\nrole = \"provider\"\norg = \"{org}\"\nsha256 = \"{}\"\n",
            hash_token("s3cret")
        );
        let book = TokenBook::from_toml(&text).unwrap();
        let who = book.authenticate(&metadata("Bearer s3cret")).unwrap();
        assert_eq!((who.role, who.org.to_string()), (Role::Provider, org.replace('-', "")));
        assert_eq!(
            book.authenticate(&metadata("Bearer wrong")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            book.authenticate(&metadata("s3cret")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            book.authenticate(&MetadataMap::new()).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn a_bad_token_file_says_which_entry_is_wrong() {
        let err = TokenBook::from_toml("[[token]]\nname='x'\nrole='admin'\norg='nope'\nsha256='00'\n").unwrap_err();
        assert!(err.to_string().contains("token[0].org"), "{err}");
        let err = TokenBook::from_toml("[[token]]\nname='x'\nrole='chief'\norg='nope'\nsha256='00'\n").unwrap_err();
        assert!(err.to_string().contains("chief"), "{err}");
    }

    #[tokio::test]
    async fn a_token_added_to_the_file_is_accepted_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let entry = |token: &str| {
            format!(
                "[[token]]\nname = \"n\"\nrole = \"intake\"\norg = \"6f1c0a7e-0b1d-4c47-9a51-5c6f0e3b2a10\"\nsha256 = \"{}\"\n",
                hash_token(token)
            )
        };
        std::fs::write(&path, entry("first")).unwrap();
        let book = TokenBook::load(&path).unwrap();
        let watcher = book.watch_file(path.clone());
        assert!(book.authenticate(&metadata("Bearer second")).is_err());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(&path, entry("first") + &entry("second")).unwrap();
        let mut accepted = false;
        for _ in 0..50 {
            if book.authenticate(&metadata("Bearer second")).is_ok() {
                accepted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(accepted, "the new token was not picked up");
        // A broken file keeps the tokens in force.
        std::fs::write(&path, "not toml [").unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(book.authenticate(&metadata("Bearer first")).is_ok());
        watcher.abort();
    }

    #[test]
    fn roles_and_organisations_are_checked() {
        let org = OrgId::from_u128(1);
        let provider = Principal {
            name: "p".into(),
            role: Role::Provider,
            org,
        };
        assert!(provider.require(&[Role::Provider, Role::Admin]).is_ok());
        assert_eq!(
            provider.require(&[Role::Intake]).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(provider.acts_for(org));
        assert!(!provider.acts_for(OrgId::from_u128(2)));
        let admin = Principal {
            name: "a".into(),
            role: Role::Admin,
            org,
        };
        assert!(admin.acts_for(OrgId::from_u128(2)));
    }
}
