//! The console's configuration, in the services' format: one TOML file
//! (named by `REFER_CONFIG`), every key overridable by its environment
//! variable, safe local defaults; an unknown key or a bad value stops the
//! console at start with the setting named.
//!
//! | key | environment | default |
//! |---|---|---|
//! | `listen` | `REFER_LISTEN` | `127.0.0.1:8080` |
//! | `tls_cert_file` | `REFER_TLS_CERT_FILE` | none; the certificate (PEM chain) the console serves https with, reloaded when it changes |
//! | `tls_key_file` | `REFER_TLS_KEY_FILE` | none; its private key (PEM), never logged |
//! | `tls_client_ca_file` | `REFER_TLS_CLIENT_CA_FILE` | none; with it, browsers must present a certificate this CA signed |
//! | `tls_plaintext` | `REFER_TLS_PLAINTEXT` | `false`; `true` serves plain http (local development only; said loudly at start). A certificate or this is required |
//! | `capacity_url` | `REFER_CAPACITY_URL` | `https://127.0.0.1:50051` (several, comma-separated: replicas; `http://` only for local development) |
//! | `donations_url` | `REFER_DONATIONS_URL` | `https://127.0.0.1:50052` |
//! | `intake_url` | `REFER_INTAKE_URL` | `https://127.0.0.1:50053` |
//! | `matcher_url` | `REFER_MATCHER_URL` | `https://127.0.0.1:50054` |
//! | `ca_file` | `REFER_CA_FILE` | none; the CA the services' certificates are verified against (required for `https://` addresses) |
//! | `client_cert_file` | `REFER_CLIENT_CERT_FILE` | none; the certificate the console presents to services that require mutual TLS |
//! | `client_key_file` | `REFER_CLIENT_KEY_FILE` | none; its private key |
//! | `idle_minutes` | `REFER_IDLE_MINUTES` | `30` (a session ends after this long unused) |
//! | `secure_cookies` | `REFER_SECURE_COOKIES` | `true` when it serves TLS, else `false` (cookies get `Secure`; `true` behind a TLS proxy too) |
//! | `tokens_file` | `REFER_TOKENS_FILE` | none (with it, admins add partners on the console) |
//! | `log_format` | `REFER_LOG_FORMAT` | `text` (or `json`) |
//! | `sessions_nats_url` | `REFER_SESSIONS_NATS_URL` | none: sessions are kept in this process. With NATS URLs (comma-separated for a cluster), in a key-value bucket every console replica shares |
//! | `sessions_nats_nkey_file` | `REFER_SESSIONS_NATS_NKEY_FILE` | none; the console's nkey seed on that bus (deploy/nats/auth.conf) |
//! | `sessions_nats_ca_file` | `REFER_SESSIONS_NATS_CA_FILE` | none; the CA of the bus's certificates (TLS required), or `sessions_nats_plaintext = true` (development only) |
//! | `sessions_replicas` | `REFER_SESSIONS_REPLICAS` | `1` (copies of that bucket: 3 on the compose cluster) |

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// TLS on the console's own listener.
    pub tls: refer_client::tls::ServerTls,
    /// How the services' certificates are verified, and the console's own
    /// certificate for services that require mutual TLS.
    pub services_tls: refer_client::tls::ClientTls,
    pub capacity_url: String,
    pub donations_url: String,
    pub intake_url: String,
    pub matcher_url: String,
    pub idle: Duration,
    pub secure_cookies: bool,
    pub tokens_file: Option<std::path::PathBuf>,
    pub json_logs: bool,
    /// Where sessions are shared between console replicas (`None`: kept
    /// in this process), and in how many copies.
    pub sessions_nats_url: Option<String>,
    /// The console's credential on that bus.
    pub sessions_nats_nkey_file: Option<std::path::PathBuf>,
    /// The CA of that bus's certificates.
    pub sessions_nats_ca_file: Option<std::path::PathBuf>,
    /// No TLS to that bus (development only).
    pub sessions_nats_plaintext: bool,
    pub sessions_replicas: usize,
    /// The coalition's time zone (an IANA name): every time the console
    /// shows is in it, whatever the reader's device says (default UTC).
    pub time_zone: String,
    /// The coalition's counties and places the forms offer (`None`: the
    /// demo coalition's, `Places::demo`).
    pub places: Option<crate::places::Places>,
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    tls_client_ca_file: Option<String>,
    tls_plaintext: Option<bool>,
    ca_file: Option<String>,
    client_cert_file: Option<String>,
    client_key_file: Option<String>,
    capacity_url: Option<String>,
    donations_url: Option<String>,
    intake_url: Option<String>,
    matcher_url: Option<String>,
    idle_minutes: Option<u64>,
    secure_cookies: Option<bool>,
    tokens_file: Option<String>,
    log_format: Option<String>,
    sessions_nats_url: Option<String>,
    sessions_nats_nkey_file: Option<String>,
    sessions_nats_ca_file: Option<String>,
    sessions_nats_plaintext: Option<bool>,
    sessions_replicas: Option<u32>,
    time_zone: Option<String>,
    places_file: Option<String>,
}

impl Config {
    /// Reads `REFER_CONFIG` (if set) and the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let file = match std::env::var_os("REFER_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read REFER_CONFIG={}: {e}", Path::new(&path).display()))?;
                Some((std::path::PathBuf::from(path), text))
            }
            None => None,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_sources(file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), env)
    }

    /// The configuration from a file's text (if any) and an environment.
    pub fn from_sources(file: Option<(&Path, &str)>, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let f: FileConfig = match file {
            Some((path, text)) => toml::from_str(text)
                .map_err(|e| anyhow::anyhow!("configuration file {} is not valid: {e}", path.display()))?,
            None => FileConfig::default(),
        };
        let pick = |var: &str, key: &str, value: Option<String>| -> Option<(String, String)> {
            env(var)
                .map(|v| (v, var.to_owned()))
                .or(value.map(|v| (v, key.to_owned())))
        };
        let url = |var: &str, key: &str, value: Option<String>, port: u16| -> anyhow::Result<String> {
            let (text, from) = pick(var, key, value).unwrap_or((format!("https://127.0.0.1:{port}"), "default".into()));
            let each = text.split(',').map(str::trim);
            if !each
                .clone()
                .all(|u| u.starts_with("http://") || u.starts_with("https://"))
            {
                anyhow::bail!("{from}={text:?} must be http:// or https:// addresses (comma-separated for replicas)");
            }
            Ok(text)
        };
        let (listen_text, listen_from) =
            pick("REFER_LISTEN", "listen", f.listen).unwrap_or(("127.0.0.1:8080".into(), "default".into()));
        let listen = listen_text
            .parse()
            .map_err(|_| anyhow::anyhow!("{listen_from}={listen_text:?} is not an address like 127.0.0.1:8080"))?;
        let idle = match pick(
            "REFER_IDLE_MINUTES",
            "idle_minutes",
            f.idle_minutes.map(|m| m.to_string()),
        ) {
            None => refer_client::provision::CONSOLE_IDLE,
            Some((text, from)) => text
                .parse::<u64>()
                .ok()
                .filter(|m| (1..=720).contains(m))
                .map(|m| Duration::from_secs(m * 60))
                .ok_or_else(|| anyhow::anyhow!("{from}={text:?} must be 1 to 720 (minutes)"))?,
        };
        let flag = |var: &str, key: &str, value: Option<bool>| -> anyhow::Result<bool> {
            match pick(var, key, value.map(|b| b.to_string())) {
                None => Ok(false),
                Some((text, from)) => text
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{from}={text:?} must be true or false")),
            }
        };
        let path = |var: &str, key: &str, value: Option<String>| pick(var, key, value).map(|(v, _)| v.into());
        let tls = refer_client::tls::ServerTls {
            cert_file: path("REFER_TLS_CERT_FILE", "tls_cert_file", f.tls_cert_file),
            key_file: path("REFER_TLS_KEY_FILE", "tls_key_file", f.tls_key_file),
            client_ca_file: path("REFER_TLS_CLIENT_CA_FILE", "tls_client_ca_file", f.tls_client_ca_file),
            plaintext: flag("REFER_TLS_PLAINTEXT", "tls_plaintext", f.tls_plaintext)?,
        };
        let services_tls = refer_client::tls::ClientTls {
            ca_file: path("REFER_CA_FILE", "ca_file", f.ca_file),
            cert_file: path("REFER_CLIENT_CERT_FILE", "client_cert_file", f.client_cert_file),
            key_file: path("REFER_CLIENT_KEY_FILE", "client_key_file", f.client_key_file),
        };
        let secure_cookies = match pick(
            "REFER_SECURE_COOKIES",
            "secure_cookies",
            f.secure_cookies.map(|b| b.to_string()),
        ) {
            // Served over TLS, a cookie never travels without it.
            None => tls.cert_file.is_some(),
            Some((text, from)) => text
                .parse()
                .map_err(|_| anyhow::anyhow!("{from}={text:?} must be true or false"))?,
        };
        let json_logs = match pick("REFER_LOG_FORMAT", "log_format", f.log_format) {
            None => false,
            Some((text, _)) if text == "text" => false,
            Some((text, _)) if text == "json" => true,
            Some((text, from)) => anyhow::bail!("{from}={text:?} must be text or json"),
        };
        let sessions_nats_url = match pick("REFER_SESSIONS_NATS_URL", "sessions_nats_url", f.sessions_nats_url) {
            None => None,
            Some((text, from)) => {
                if !text.split(',').map(str::trim).all(|u| u.starts_with("nats://")) {
                    anyhow::bail!("{from}={text:?} must be nats:// addresses (comma-separated for a cluster)");
                }
                Some(text)
            }
        };
        let sessions_replicas = refer_client::bus::replicas(pick(
            "REFER_SESSIONS_REPLICAS",
            "sessions_replicas",
            f.sessions_replicas.map(|r| r.to_string()),
        ))?;
        let time_zone = match pick("REFER_TIME_ZONE", "time_zone", f.time_zone) {
            None => "UTC".to_owned(),
            Some((text, from)) => {
                jiff::tz::TimeZone::get(&text).map_err(|_| {
                    anyhow::anyhow!("{from}={text:?} is not a time zone: an IANA name such as America/Los_Angeles")
                })?;
                text
            }
        };
        let places = match pick("REFER_PLACES_FILE", "places_file", f.places_file) {
            None => None,
            Some((path, _)) => Some(crate::places::Places::read(Path::new(&path))?),
        };
        Ok(Self {
            places,
            time_zone,
            tls,
            services_tls,
            sessions_nats_url,
            sessions_nats_nkey_file: pick(
                "REFER_SESSIONS_NATS_NKEY_FILE",
                "sessions_nats_nkey_file",
                f.sessions_nats_nkey_file,
            )
            .map(|(v, _)| v.into()),
            sessions_nats_ca_file: pick(
                "REFER_SESSIONS_NATS_CA_FILE",
                "sessions_nats_ca_file",
                f.sessions_nats_ca_file,
            )
            .map(|(v, _)| v.into()),
            sessions_nats_plaintext: match pick(
                "REFER_SESSIONS_NATS_PLAINTEXT",
                "sessions_nats_plaintext",
                f.sessions_nats_plaintext.map(|b| b.to_string()),
            ) {
                None => false,
                Some((text, from)) => text
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{from}={text:?} must be true or false"))?,
            },
            sessions_replicas,
            listen,
            capacity_url: url("REFER_CAPACITY_URL", "capacity_url", f.capacity_url, 50051)?,
            donations_url: url("REFER_DONATIONS_URL", "donations_url", f.donations_url, 50052)?,
            intake_url: url("REFER_INTAKE_URL", "intake_url", f.intake_url, 50053)?,
            matcher_url: url("REFER_MATCHER_URL", "matcher_url", f.matcher_url, 50054)?,
            idle,
            secure_cookies,
            tokens_file: pick("REFER_TOKENS_FILE", "tokens_file", f.tokens_file).map(|(v, _)| v.into()),
            json_logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let file = |text: &str| Config::from_sources(Some((Path::new("console.toml"), text)), |_| None);
        assert!(file("listen = \"127.0.0.1:9\"\nidle_minutes = 5\n").is_ok());
        let err = file("idle_minutes = 0\n").unwrap_err().to_string();
        assert!(err.contains("idle_minutes=\"0\" must be 1 to 720"), "{err}");
        let err = file("intake_url = \"intake:50053\"\n").unwrap_err().to_string();
        assert!(err.contains("intake_url=\"intake:50053\" must be http://"), "{err}");
        let served = file("tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\nca_file = \"ca.pem\"\n").unwrap();
        assert!(served.secure_cookies, "cookies are Secure once the console serves TLS");
        assert_eq!(served.services_tls.ca_file, Some("ca.pem".into()));
        assert!(!file("").unwrap().secure_cookies);
        let err = file("time_zone = \"America/Springfield\"\n").unwrap_err().to_string();
        assert!(
            err.contains("time_zone=\"America/Springfield\" is not a time zone"),
            "{err}"
        );
        assert_eq!(file("").unwrap().time_zone, "UTC");
        assert_eq!(
            file("time_zone = \"America/Los_Angeles\"\n").unwrap().time_zone,
            "America/Los_Angeles"
        );
        let err = file("kek_file = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        let env = Config::from_sources(None, |k| (k == "REFER_SECURE_COOKIES").then(|| "yes".into()));
        assert!(env.unwrap_err().to_string().contains("REFER_SECURE_COOKIES=\"yes\""));
        let err = file("sessions_nats_url = \"http://nats:4222\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sessions_nats_url=\"http://nats:4222\" must be nats://"),
            "{err}"
        );
        let err = file("sessions_replicas = 7\n").unwrap_err().to_string();
        assert!(err.contains("sessions_replicas=\"7\" must be 1 to 5"), "{err}");
        let shared = file("sessions_nats_url = \"nats://a:4222,nats://b:4222\"\nsessions_replicas = 3\n").unwrap();
        assert_eq!(
            (shared.sessions_nats_url.as_deref(), shared.sessions_replicas),
            (Some("nats://a:4222,nats://b:4222"), 3)
        );
        assert_eq!(file("").unwrap().sessions_nats_url, None, "in this process by default");
    }
}
