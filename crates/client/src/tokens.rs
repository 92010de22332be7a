//! Partners' bearer tokens, as a client sends them and as the token file
//! keeps them (TOML, only the SHA-256 of each token; the file's format is
//! in `refer_service::auth`). The CLI adds partners here; the services read
//! the same file.

use refer_domain::ids::OrgId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use tonic::Request;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Intake staff of an agency (police, advocates).
    Intake,
    /// A provider partner (shelter, clinic, counselor, legal aid).
    Provider,
    /// A business donating resources.
    Business,
    /// A coalition administrator who registers partners.
    Admin,
}

impl Role {
    /// As the token file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Intake => "intake",
            Self::Provider => "provider",
            Self::Business => "business",
            Self::Admin => "admin",
        }
    }
}

/// Wraps `message` in a request carrying `Bearer <token>` (clients: the
/// CLI, the benchmark, tests).
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}

#[derive(Deserialize)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
struct TokenEntry {
    name: String,
    role: Role,
    org: String,
    sha256: String,
}

/// A partner of the token file, checked: its organisation a UUID, its
/// hash 32 bytes.
pub struct Entry {
    pub name: String,
    pub role: Role,
    pub org: OrgId,
    pub sha256: [u8; 32],
}

/// Every entry of a token file's `text`, or what is wrong with it (an
/// entry by its index; never a hash).
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let file: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(file.token.len());
    for (i, entry) in file.token.into_iter().enumerate() {
        let org = entry
            .org
            .parse()
            .map_err(|_| format!("token[{i}].org is not a UUID: {:?}", entry.org))?;
        let sha256: [u8; 32] = hex::decode(&entry.sha256)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| format!("token[{i}].sha256 is not 64 hex digits"))?;
        if !seen.insert(sha256) {
            return Err(format!("token[{i}] repeats a hash"));
        }
        entries.push(Entry {
            name: entry.name,
            role: entry.role,
            org,
            sha256,
        });
    }
    Ok(entries)
}
/// The hex SHA-256 of a token, as stored in the token file.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A partner as the token file names it (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    pub name: String,
    pub role: Role,
    pub org: String,
}

/// Every partner of the token file at `path`.
pub fn partners(path: &Path) -> Result<Vec<Partner>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: TokenFile =
        toml::from_str(&text).map_err(|e| format!("{} is not a valid token file: {e}", path.display()))?;
    Ok(file
        .token
        .into_iter()
        .map(|e| Partner {
            name: e.name,
            role: e.role,
            org: e.org,
        })
        .collect())
}

/// Adds a partner to the token file at `path`: a new random token (244
/// bits), of which only the SHA-256 is stored. Returns the token, to be
/// shown once. Running services pick it up within seconds (`watch_file`).
/// A partner's name as the token file can hold it.
pub fn check_name(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 100
        || name.contains('"')
        || name.contains('\\')
        || name.chars().any(char::is_control)
    {
        return Err("name: 1-100 characters, no quotes, backslashes or control characters".into());
    }
    Ok(())
}

/// Adds a partner with a fresh token to the token file at `path`; the
/// token, which the file never holds.
pub fn add_partner(path: &Path, name: &str, role: Role, org: uuid::Uuid) -> Result<String, String> {
    let _held = lock(path)?;
    let token = new_token();
    add_partner_with(path, name, role, org, &token)?;
    Ok(token)
}

/// [`add_partner`], once: when the file already holds a partner of that
/// name, role and organisation (a form posted twice), nothing is added and
/// the answer is `None`. Checked and added under the file's lock, so two
/// posts at once add one.
pub fn add_partner_once(path: &Path, name: &str, role: Role, org: uuid::Uuid) -> Result<Option<String>, String> {
    let _held = lock(path)?;
    let same =
        |p: &Partner| p.name == name.trim() && p.role == role && uuid::Uuid::parse_str(&p.org).is_ok_and(|o| o == org);
    if partners(path)?.iter().any(same) {
        return Ok(None);
    }
    let token = new_token();
    add_partner_with(path, name, role, org, &token)?;
    Ok(Some(token))
}

/// A fresh token: 256 random bits as 64 hex digits.
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Holds the token file at `path` for one writer (an advisory lock on
/// the file itself, which every writer appends to in place) until the
/// returned file is dropped; waits for another writer.
pub fn lock(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Adds a partner whose `token` the caller made (and has kept safe first:
/// once the file holds its hash, the token can never be shown again). The
/// caller holds [`lock`]. The entry is appended in place (the file keeps
/// its inode: a container's bind mount of it sees the change) in one
/// write; a write that fails (a full disk) is cut off again, so the file
/// is never left with half an entry that would stop every later reload.
pub fn add_partner_with(path: &Path, name: &str, role: Role, org: uuid::Uuid, token: &str) -> Result<(), String> {
    use std::io::Write;
    let name = name.trim();
    check_name(name)?;
    let entry = format!(
        "\n[[token]]\nname = \"{name}\"\nrole = \"{}\"\norg = \"{}\"\nsha256 = \"{}\"\n",
        role.name(),
        org,
        hash_token(token)
    );
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse(&text).map_err(|e| format!("{} is not a valid token file: {e}", path.display()))?;
    parse(&(text + &entry)).map_err(|e| format!("the entry would make the token file invalid: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let before = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let written = file.write_all(entry.as_bytes()).and_then(|()| file.sync_data());
    written.map_err(|e| {
        let _ = file.set_len(before).and_then(|()| file.sync_data());
        format!("cannot write {}: {e} (it is unchanged)", path.display())
    })
}
