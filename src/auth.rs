//! API tokens: kept in a `Secret` that never prints, and checked in constant time.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq};

#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// One configured token: a bare string (named by its list and position, `upload-1`,
/// `read-2`, …) or `{ name = "ci", token = "…" }`. The name is what the audit log shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenSetting {
    Plain(Secret),
    Named(NamedToken),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedToken {
    pub name: String,
    pub token: Secret,
}

impl TokenSetting {
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Plain(secret) => secret,
            Self::Named(named) => &named.token,
        }
    }

    /// The configured name, or `<list>-<position from 1>` for a bare token.
    pub fn name(&self, list: &str, index: usize) -> String {
        match self {
            Self::Plain(_) => format!("{list}-{}", index + 1),
            Self::Named(named) => named.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Leasing builds and reporting their results: worker tokens and upload tokens.
    Work,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "authentication required: send an API token (HTTP basic `__token__:<token>` or `Authorization: Bearer <token>`)"
    )]
    Missing,
    #[error("the API token is not valid for this operation")]
    Invalid,
}

/// Who sent a request: the name of the token it presented, `anonymous` without one, or
/// `unknown-token` for a token that is not configured. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(String);

impl Caller {
    pub fn anonymous() -> Self {
        Self("anonymous".into())
    }

    fn unknown() -> Self {
        Self("unknown-token".into())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which list a token came from, and so what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Upload,
    Read,
    Worker,
}

impl Class {
    fn allows(self, access: Access) -> bool {
        match (self, access) {
            (Self::Upload, _) => true,
            (Self::Read, Access::Read) | (Self::Worker, Access::Work) => true,
            (Self::Read | Self::Worker, _) => false,
        }
    }
}

#[derive(Debug, Clone)]
struct KnownToken {
    name: String,
    digest: [u8; 32],
    class: Class,
}

/// The configured tokens, stored as sha256 digests so comparison time does not depend on
/// where two tokens first differ, nor on their length.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    known: Vec<KnownToken>,
    read_requires_token: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Extracts the token from `Authorization`: twine sends basic auth as `__token__:<token>`;
/// any user name is accepted so `pip`'s `https://user:token@host/` works too.
pub fn token_from_header(header: &str) -> Option<String> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?;
        let (_, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// A stable, non-secret name for the token a request carried: 16 hex digits of a sha256 of
/// the token (domain-separated, so it equals no other digest kept of it). A remote worker's
/// lease belongs to it; it never reveals the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialId(String);

const CREDENTIAL_HEX_DIGITS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a credential id: expected {CREDENTIAL_HEX_DIGITS} lowercase hex digits")]
pub struct CredentialIdError {
    input: String,
}

impl TryFrom<String> for CredentialId {
    type Error = CredentialIdError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        let hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
        if input.len() == CREDENTIAL_HEX_DIGITS && input.bytes().all(hex) {
            Ok(Self(input))
        } else {
            Err(CredentialIdError { input })
        }
    }
}

impl From<CredentialId> for String {
    fn from(id: CredentialId) -> Self {
        id.0
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity of the token in an `Authorization` header; `None` without a token. Say
/// nothing about whether the token is valid: call `Tokens::check` first.
pub fn credential_id(header: Option<&str>) -> Option<CredentialId> {
    let token = header.and_then(token_from_header)?;
    let digest = Sha256::new()
        .chain_update(b"edelweiss credential\0")
        .chain_update(token.as_bytes())
        .finalize();
    Some(CredentialId(
        hex::encode(digest)[..CREDENTIAL_HEX_DIGITS].to_string(),
    ))
}

impl Tokens {
    pub fn new(write: &[TokenSetting], read: &[TokenSetting], read_requires_token: bool) -> Self {
        let mut tokens = Self {
            known: Vec::new(),
            read_requires_token,
        };
        tokens.add(write, "upload", Class::Upload);
        tokens.add(read, "read", Class::Read);
        tokens
    }

    /// Adds the tokens remote workers use: they may lease builds and report results, and
    /// nothing else.
    pub fn with_workers(mut self, work: &[TokenSetting]) -> Self {
        self.add(work, "worker", Class::Worker);
        self
    }

    fn add(&mut self, settings: &[TokenSetting], list: &str, class: Class) {
        self.known.extend(
            settings
                .iter()
                .enumerate()
                .map(|(index, setting)| KnownToken {
                    name: setting.name(list, index),
                    digest: digest(setting.secret().expose()),
                    class,
                }),
        );
    }

    /// Whether reads need a token, so their responses must not sit in shared caches.
    pub fn read_requires_token(&self) -> bool {
        self.read_requires_token
    }

    /// Compares `presented` with every known token (no early exit): whether one allowing
    /// `access` matches, and the index of the first match.
    fn lookup(&self, presented: &[u8; 32], access: Access) -> (bool, Option<usize>) {
        let mut allowed = Choice::from(0);
        let mut first = u64::MAX;
        for (index, known) in self.known.iter().enumerate().rev() {
            let hit = known.digest.ct_eq(presented);
            allowed |= hit & Choice::from(u8::from(known.class.allows(access)));
            first = u64::conditional_select(&first, &(index as u64), hit);
        }
        let first = usize::try_from(first)
            .ok()
            .filter(|index| *index < self.known.len());
        (bool::from(allowed), first)
    }

    /// Who presented `header`, whatever they may do.
    pub fn identify(&self, header: Option<&str>) -> Caller {
        let Some(token) = header.and_then(token_from_header) else {
            return Caller::anonymous();
        };
        match self.lookup(&digest(&token), Access::Read) {
            (_, Some(index)) => Caller(self.known[index].name.clone()),
            (_, None) => Caller::unknown(),
        }
    }

    /// Checks an `Authorization` header value for `access`, and says who sent it.
    pub fn check(&self, header: Option<&str>, access: Access) -> Result<Caller, AuthError> {
        if access == Access::Read && !self.read_requires_token {
            return Ok(self.identify(header));
        }
        let token = header
            .and_then(token_from_header)
            .ok_or(AuthError::Missing)?;
        match self.lookup(&digest(&token), access) {
            (true, Some(index)) => Ok(Caller(self.known[index].name.clone())),
            _ => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn plain(token: impl Into<String>) -> TokenSetting {
        TokenSetting::Plain(Secret::new(token))
    }

    fn named(name: &str, token: impl Into<String>) -> TokenSetting {
        TokenSetting::Named(NamedToken {
            name: name.into(),
            token: Secret::new(token),
        })
    }

    fn caller(name: &str) -> Result<Caller, AuthError> {
        Ok(Caller(name.into()))
    }

    #[test]
    fn accepts_twine_basic_and_bearer_tokens() {
        let tokens = Tokens::new(&[plain("upload-token-0123456789")], &[], false);
        assert_eq!(
            tokens.check(
                Some(&basic("__token__", "upload-token-0123456789")),
                Access::Write
            ),
            caller("upload-1")
        );
        assert_eq!(
            tokens.check(Some("Bearer upload-token-0123456789"), Access::Write),
            caller("upload-1")
        );
        assert_eq!(
            tokens.check(Some(&basic("__token__", "wrong")), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(tokens.check(None, Access::Write), Err(AuthError::Missing));
        assert_eq!(tokens.check(None, Access::Read), caller("anonymous"));
    }

    #[test]
    fn read_tokens_cannot_write() {
        let tokens = Tokens::new(&[plain("w".repeat(20))], &[plain("r".repeat(20))], true);
        let read = format!("Bearer {}", "r".repeat(20));
        assert_eq!(tokens.check(Some(&read), Access::Read), caller("read-1"));
        assert_eq!(
            tokens.check(Some(&read), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(tokens.check(None, Access::Read), Err(AuthError::Missing));
    }

    #[test]
    fn worker_tokens_only_work() {
        let tokens =
            Tokens::new(&[plain("w".repeat(20))], &[], true).with_workers(&[plain("k".repeat(20))]);
        let worker = format!("Bearer {}", "k".repeat(20));
        assert_eq!(
            tokens.check(Some(&worker), Access::Work),
            caller("worker-1")
        );
        assert_eq!(
            tokens.check(Some(&worker), Access::Write),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            tokens.check(Some(&worker), Access::Read),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn tokens_are_named_by_configuration_or_position() {
        let tokens = Tokens::new(
            &[plain("a".repeat(20)), named("ci", "b".repeat(20))],
            &[plain("c".repeat(20))],
            true,
        );
        let bearer = |token: String| format!("Bearer {token}");
        assert_eq!(
            tokens.check(Some(&bearer("a".repeat(20))), Access::Write),
            caller("upload-1")
        );
        assert_eq!(
            tokens.check(Some(&bearer("b".repeat(20))), Access::Write),
            caller("ci")
        );
        assert_eq!(
            tokens.identify(Some(&bearer("c".repeat(20)))).name(),
            "read-1"
        );
        assert_eq!(
            tokens.identify(Some(&bearer("d".repeat(20)))).name(),
            "unknown-token"
        );
        assert_eq!(tokens.identify(None).name(), "anonymous");
    }

    #[test]
    fn a_token_listed_twice_keeps_its_widest_access() {
        let token = "s".repeat(20);
        let tokens = Tokens::new(&[plain(&token)], &[plain(&token)], true);
        let header = format!("Bearer {token}");
        assert_eq!(
            tokens.check(Some(&header), Access::Write),
            caller("upload-1")
        );
        assert_eq!(
            tokens.check(Some(&header), Access::Read),
            caller("upload-1")
        );
    }

    #[test]
    fn token_settings_accept_strings_and_named_tables() {
        #[derive(Deserialize)]
        struct List {
            tokens: Vec<TokenSetting>,
        }
        let list: List =
            toml::from_str("tokens = [\"plain-token-0123456789\", { name = \"ci\", token = \"named-token-0123456789\" }]")
                .unwrap();
        assert_eq!(list.tokens[0].name("upload", 0), "upload-1");
        assert_eq!(list.tokens[0].secret().expose(), "plain-token-0123456789");
        assert_eq!(list.tokens[1].name("upload", 1), "ci");
        assert_eq!(list.tokens[1].secret().expose(), "named-token-0123456789");
        assert!(format!("{:?}", list.tokens).contains("redacted"));
        assert!(!format!("{:?}", list.tokens).contains("named-token"));
    }

    #[test]
    fn credential_ids_are_stable_per_token_and_reveal_nothing() {
        let bearer = credential_id(Some("Bearer k-token-0123456789abcdef")).unwrap();
        let basic = credential_id(Some(&basic("__token__", "k-token-0123456789abcdef"))).unwrap();
        let other = credential_id(Some("Bearer j-token-0123456789abcdef")).unwrap();
        assert_eq!(
            bearer, basic,
            "the same token by either scheme is one credential"
        );
        assert_ne!(bearer, other);
        assert_eq!(bearer.to_string().len(), 16);
        assert!(!bearer.to_string().contains("token"));
        assert_eq!(credential_id(None), None);
        let round_trip: CredentialId =
            serde_json::from_value(serde_json::to_value(&bearer).unwrap()).unwrap();
        assert_eq!(round_trip, bearer);
        assert!(serde_json::from_str::<CredentialId>("\"../../etc\"").is_err());
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret([redacted])"
        );
    }
}
