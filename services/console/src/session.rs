//! Server-side sessions. The partner's token is sent once, at sign-in, and
//! stays here; the browser holds only a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` behind TLS). Each session has its own
//! CSRF token, carried by every form; a session ends on sign-out or after
//! `idle` unused. Sign-in attempts are limited per client address.

use crate::i18n::Lang;
use refer_service::Role;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COOKIE: &str = "refer_session";
/// Sign-in attempts allowed per client address per minute.
pub const SIGN_INS_PER_MINUTE: usize = 10;

#[derive(Clone)]
pub struct Session {
    pub id: String,
    /// The partner's token, used for every call the console makes for them.
    pub token: String,
    pub role: Role,
    /// Carried by every form of this session.
    pub csrf: String,
    pub lang: Lang,
    last_seen: Instant,
}

#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    attempts: Arc<Mutex<HashMap<IpAddr, VecDeque<Instant>>>>,
    idle: Duration,
}

/// 244 random bits as hex (two v4 UUIDs: the OS's random source).
pub fn random_id() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Self {
            inner: Arc::default(),
            attempts: Arc::default(),
            idle,
        }
    }

    pub fn create(&self, token: String, role: Role, lang: Lang) -> Session {
        let session = Session {
            id: random_id(),
            token,
            role,
            csrf: random_id(),
            lang,
            last_seen: Instant::now(),
        };
        let mut all = self.inner.lock().expect("sessions lock");
        all.retain(|_, s| s.last_seen.elapsed() < self.idle);
        all.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session `id`, touched; an idle one is ended.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut all = self.inner.lock().expect("sessions lock");
        let live = all.get(id).is_some_and(|s| s.last_seen.elapsed() < self.idle);
        if !live {
            all.remove(id);
            return None;
        }
        let session = all.get_mut(id).expect("live");
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn set_lang(&self, id: &str, lang: Lang) {
        if let Some(s) = self.inner.lock().expect("sessions lock").get_mut(id) {
            s.lang = lang;
        }
    }

    pub fn end(&self, id: &str) {
        self.inner.lock().expect("sessions lock").remove(id);
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

    #[test]
    fn a_session_ends_when_idle_or_signed_out_and_sign_ins_are_limited() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let s = sessions.create("t".into(), Role::Intake, Lang::En);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        assert!(sessions.get(&s.id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&s.id).is_none(), "idle too long");
        let s = sessions.create("t".into(), Role::Intake, Lang::En);
        sessions.end(&s.id);
        assert!(sessions.get(&s.id).is_none(), "signed out");
        let client: IpAddr = "10.0.0.7".parse().unwrap();
        assert!((0..SIGN_INS_PER_MINUTE).all(|_| sessions.allow_sign_in(client)));
        assert!(!sessions.allow_sign_in(client));
        assert!(sessions.allow_sign_in("10.0.0.8".parse().unwrap()), "per address");
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_behind_tls() {
        assert_eq!(cookie("a=1; refer_session=abc; b=2", COOKIE), Some("abc"));
        let c = set_cookie(COOKIE, "abc", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(COOKIE, "abc", false, Some(0)).contains("Secure"));
    }
}
