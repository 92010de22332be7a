//! Server-side sessions. The partner's token is sent once, at sign-in, and
//! stays on the server; the browser holds only a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind TLS). Each session
//! has its own CSRF token, carried by every form; a session ends on
//! sign-out or after `idle` unused. Sign-in attempts are limited per client
//! address (per console replica).
//!
//! Sessions live in this process, or, for several console replicas behind
//! one address, in a JetStream key-value bucket every replica reads
//! (`sessions_nats_url`): a user signed in on one replica is signed in on
//! all, and signing out on one ends the session everywhere. The bucket never
//! holds a token in clear, nor the session id: an entry's key is a hash of
//! the id, and its value is sealed (XChaCha20-Poly1305) with a key derived
//! from the id, which only the browser holds. Whoever reads the bucket or
//! its backups learns nothing usable; entries expire `idle` after their
//! last touch (the bucket's max age).

use crate::i18n::Lang;
use async_nats::jetstream::kv;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use refer_client::Role;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const COOKIE: &str = "refer_session";
/// Failed sign-in attempts allowed per client address per minute (an
/// attempt counts from its start, so parallel guesses are limited too; one
/// that signs in is given back).
pub const SIGN_INS_PER_MINUTE: usize = 10;
/// The key-value bucket of shared sessions.
pub use refer_client::provision::CONSOLE_SESSIONS as BUCKET;

/// Neither `Debug` nor `Display`: a session holds a partner's token, which
/// must never reach a log line.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    #[serde(skip)]
    pub id: String,
    /// The partner's token, used for every call the console makes for them.
    pub token: String,
    pub role: Role,
    /// Carried by every form of this session.
    pub csrf: String,
    #[serde(with = "lang_code")]
    pub lang: Lang,
    /// When it was last used (milliseconds since the epoch).
    touched_ms: u64,
    /// What the next page shows once, after an action that redirected to
    /// it (say, a new partner's token): never in a URL, and sealed with the
    /// session in the shared bucket.
    #[serde(default)]
    flash: Option<String>,
}

mod lang_code {
    use crate::i18n::Lang;
    pub fn serialize<S: serde::Serializer>(lang: &Lang, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(lang.code())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
        let code: String = serde::Deserialize::deserialize(d)?;
        Ok(Lang::parse(&code).unwrap_or_default())
    }
}

/// Where sessions are kept.
#[derive(Clone)]
enum Store {
    Local(Arc<Mutex<HashMap<String, Session>>>),
    Shared(Box<kv::Store>),
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
    attempts: Arc<Mutex<HashMap<IpAddr, VecDeque<Instant>>>>,
    idle: Duration,
}

/// 244 random bits as hex (two v4 UUIDs: the OS's random source).
pub fn random_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A hash of `id` for `use`: the bucket's key, or the sealing key.
fn derived(id: &str, purpose: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"refer-console-session/");
    hash.update(purpose.as_bytes());
    hash.update(b"/");
    hash.update(id.as_bytes());
    hash.finalize().into()
}

fn bucket_key(id: &str) -> String {
    hex::encode(derived(id, "key"))
}

/// The session sealed with the key only its id gives, bound to its entry.
fn seal(session: &Session) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&derived(&session.id, "seal").into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let plain = serde_json::to_vec(session).expect("a session encodes");
    let key = bucket_key(&session.id);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: key.as_bytes(),
            },
        )
        .expect("sealing cannot fail");
    [&nonce[..], &sealed].concat()
}

fn open(id: &str, value: &[u8]) -> Option<Session> {
    let (nonce, sealed) = value.split_at_checked(24)?;
    let cipher = XChaCha20Poly1305::new(&derived(id, "seal").into());
    let key = bucket_key(id);
    let plain = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: key.as_bytes(),
            },
        )
        .ok()?;
    let mut session: Session = serde_json::from_slice(&plain).ok()?;
    session.id = id.to_owned();
    Some(session)
}

impl Session {
    /// A session as a page renders it, for the console's own unit tests.
    #[cfg(test)]
    pub fn for_tests(role: Role) -> Self {
        Session {
            id: random_id(),
            token: String::new(),
            role,
            csrf: random_id(),
            lang: Lang::En,
            touched_ms: 0,
            flash: None,
        }
    }
}

impl Sessions {
    /// Sessions kept in this process (one console).
    pub fn new(idle: Duration) -> Self {
        Self {
            store: Store::Local(Arc::default()),
            attempts: Arc::default(),
            idle,
        }
    }

    /// Sessions shared by every console replica on the bus at `nats_url`
    /// (comma-separated for a cluster), in the bucket [`BUCKET`] the
    /// operator made (`refer admin provision`). Each console ends a
    /// session `idle` after its last use, whatever the bucket keeps.
    pub async fn shared(bus: &refer_client::bus::Bus, replicas: usize, idle: Duration) -> anyhow::Result<Self> {
        let client = refer_client::bus::connect(bus)
            .await
            .map_err(|e| anyhow::anyhow!("sessions_nats_url: {e}"))?;
        let js = async_nats::jetstream::new(client);
        let bucket = refer_client::provision::console_sessions(replicas, idle)
            .open(&js)
            .await?;
        Ok(Self {
            store: Store::Shared(Box::new(bucket)),
            attempts: Arc::default(),
            idle,
        })
    }

    /// A new session; `None` when the shared store cannot keep it now.
    pub async fn create(&self, token: String, role: Role, lang: Lang) -> Option<Session> {
        let session = Session {
            id: random_id(),
            token,
            role,
            csrf: random_id(),
            lang,
            touched_ms: now_ms(),
            flash: None,
        };
        self.keep(&session).await.then_some(session)
    }

    /// Writes `session`; says whether it was kept.
    async fn keep(&self, session: &Session) -> bool {
        match &self.store {
            Store::Local(all) => {
                let mut all = all.lock().expect("sessions lock");
                let idle = self.idle;
                all.retain(|_, s| !expired(s, idle));
                all.insert(session.id.clone(), session.clone());
                true
            }
            Store::Shared(bucket) => match bucket.put(bucket_key(&session.id), seal(session).into()).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(error = %err, "a session could not be kept");
                    false
                }
            },
        }
    }

    /// The live session `id`, touched; an idle one is ended.
    pub async fn get(&self, id: &str) -> Option<Session> {
        let mut session = match &self.store {
            Store::Local(all) => all.lock().expect("sessions lock").get(id).cloned(),
            Store::Shared(bucket) => match bucket.get(bucket_key(id)).await {
                Ok(value) => value.and_then(|v| open(id, &v)),
                Err(err) => {
                    tracing::warn!(error = %err, "sessions unreadable");
                    None
                }
            },
        }?;
        if expired(&session, self.idle) {
            self.end(id).await;
            return None;
        }
        // Touched at most every tenth of the idle time: a page load is not
        // a write to the bus each time.
        if now_ms().saturating_sub(session.touched_ms) >= (self.idle / 10).as_millis() as u64 {
            session.touched_ms = now_ms();
            self.keep(&session).await;
        }
        Some(session)
    }

    pub async fn set_lang(&self, id: &str, lang: Lang) {
        if let Some(mut session) = self.get(id).await {
            session.lang = lang;
            self.keep(&session).await;
        }
    }

    /// Keeps `text` for the session's next page; says whether it was kept.
    pub async fn set_flash(&self, id: &str, text: String) -> bool {
        match self.get(id).await {
            Some(mut session) => {
                session.flash = Some(text);
                self.keep(&session).await
            }
            None => false,
        }
    }

    /// The text kept for this page, once: it is gone after.
    pub async fn take_flash(&self, id: &str) -> Option<String> {
        let mut session = self.get(id).await?;
        let text = session.flash.take()?;
        self.keep(&session).await;
        Some(text)
    }

    pub async fn end(&self, id: &str) {
        match &self.store {
            Store::Local(all) => {
                all.lock().expect("sessions lock").remove(id);
            }
            Store::Shared(bucket) => {
                // A delete marker (one value per key): the bucket refuses rollups.
                if let Err(err) = bucket.delete(bucket_key(id)).await {
                    tracing::warn!(error = %err, "a session could not be ended");
                }
            }
        }
    }

    /// Whether `client` may try to sign in now (it counts as an attempt).
    pub fn allow_sign_in(&self, client: IpAddr) -> bool {
        let mut attempts = self.attempts.lock().expect("attempts lock");
        let window = attempts.entry(client).or_default();
        while window.front().is_some_and(|t| t.elapsed() > Duration::from_secs(60)) {
            window.pop_front();
        }
        if window.len() >= SIGN_INS_PER_MINUTE {
            return false;
        }
        window.push_back(Instant::now());
        true
    }

    /// A sign-in from `client` worked: its attempt does not count.
    pub fn signed_in(&self, client: IpAddr) {
        if let Some(window) = self.attempts.lock().expect("attempts lock").get_mut(&client) {
            window.pop_back();
        }
    }
}

fn expired(session: &Session, idle: Duration) -> bool {
    now_ms().saturating_sub(session.touched_ms) >= idle.as_millis() as u64
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for `name=value` (`max_age` 0 ends it).
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c += "; Secure";
    }
    if let Some(age) = max_age {
        c += &format!("; Max-Age={age}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_ends_when_idle_or_signed_out_and_sign_ins_are_limited() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let s = sessions.create("t".into(), Role::Intake, Lang::En).await.unwrap();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        assert!(sessions.get(&s.id).await.is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&s.id).await.is_none(), "idle too long");
        let s = sessions.create("t".into(), Role::Intake, Lang::En).await.unwrap();
        sessions.end(&s.id).await;
        assert!(sessions.get(&s.id).await.is_none(), "signed out");
        let client: IpAddr = "10.0.0.7".parse().unwrap();
        // Sign-ins that work do not count,
        for _ in 0..3 * SIGN_INS_PER_MINUTE {
            assert!(sessions.allow_sign_in(client));
            sessions.signed_in(client);
        }
        // failed ones do.
        assert!((0..SIGN_INS_PER_MINUTE).all(|_| sessions.allow_sign_in(client)));
        assert!(!sessions.allow_sign_in(client));
        assert!(sessions.allow_sign_in("10.0.0.8".parse().unwrap()), "per address");
    }

    #[test]
    fn a_sealed_session_opens_only_with_its_own_id() {
        let s = Session {
            id: random_id(),
            token: "token-of-the-shelter".into(),
            role: Role::Provider,
            csrf: random_id(),
            lang: Lang::Es,
            touched_ms: 7,
            flash: Some("a partner's new token".into()),
        };
        let sealed = seal(&s);
        let opened = open(&s.id, &sealed).expect("its own id opens it");
        assert_eq!(
            (
                opened.id,
                opened.token,
                opened.role,
                opened.csrf,
                opened.lang,
                opened.touched_ms,
                opened.flash
            ),
            (
                s.id.clone(),
                s.token.clone(),
                s.role,
                s.csrf.clone(),
                s.lang,
                s.touched_ms,
                s.flash.clone()
            )
        );
        assert!(open(&random_id(), &sealed).is_none(), "another id opens nothing");
        assert!(!sealed.windows(s.token.len()).any(|w| w == s.token.as_bytes()));
        assert!(!sealed.windows(9).any(|w| w == b"new token"), "the flash is sealed too");
        assert!(!bucket_key(&s.id).contains(&s.id));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        assert_eq!(cookie("a=1; refer_session=abc; b=2", COOKIE), Some("abc"));
        let c = set_cookie(COOKIE, "abc", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(COOKIE, "abc", false, Some(0)).contains("Secure"));
    }
}
