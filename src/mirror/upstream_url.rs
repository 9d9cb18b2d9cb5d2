//! An upstream simple-API base URL. Credentials are split off when parsed, sent only to the
//! upstream's own host, and never printed.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

use crate::auth::Secret;
use crate::pypi::PackageName;

#[derive(Clone)]
pub struct UpstreamUrl {
    base: Url,
    username: Option<String>,
    password: Option<Secret>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{shown}` is not an upstream URL: {reason}")]
pub struct UpstreamUrlError {
    shown: String,
    reason: &'static str,
}

impl UpstreamUrl {
    pub fn pypi() -> Self {
        "https://pypi.org/simple/"
            .parse()
            .expect("PyPI's simple URL is valid")
    }

    /// `<base>/<normalized name>/`, per PEP 503.
    pub fn project_url(&self, name: &PackageName) -> Url {
        self.base
            .join(&format!("{name}/"))
            .expect("a normalized name is a valid path segment")
    }

    /// Whether `url` is on this upstream's host and port.
    pub fn is_own_host(&self, url: &Url) -> bool {
        url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// Basic credentials, for URLs on the upstream's own host only.
    pub fn credentials_for(&self, url: &Url) -> Option<(&str, Option<&str>)> {
        let username = self.username.as_deref().filter(|_| self.is_own_host(url))?;
        Some((username, self.password.as_ref().map(Secret::expose)))
    }
}

impl FromStr for UpstreamUrl {
    type Err = UpstreamUrlError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let shown = || {
            Url::parse(input).map_or_else(
                |_| "(unparseable)".to_string(),
                |mut url| {
                    let _ = url.set_password(None);
                    let _ = url.set_username("");
                    url.to_string()
                },
            )
        };
        let error = |reason| UpstreamUrlError {
            shown: shown(),
            reason,
        };
        let mut base = Url::parse(input).map_err(|_| error("not an absolute URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(error(
                "only http:// and https:// URLs with a host are supported",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(error("a base URL has no query or fragment"));
        }
        let username = Some(base.username().to_string()).filter(|name| !name.is_empty());
        let password = base.password().map(Secret::new);
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            base,
            username,
            password,
        })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str())
    }
}

impl fmt::Debug for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpstreamUrl({})", self.base)
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::parse_package_name;

    #[test]
    fn splits_credentials_and_never_prints_them() {
        let upstream: UpstreamUrl = "https://reader:s3cret@artifactory.example/api/pypi/simple"
            .parse()
            .unwrap();
        assert_eq!(
            upstream.to_string(),
            "https://artifactory.example/api/pypi/simple/"
        );
        assert!(!format!("{upstream:?}").contains("s3cret"));
        let name = parse_package_name("Foo_Bar").unwrap();
        let page = upstream.project_url(&name);
        assert_eq!(
            page.as_str(),
            "https://artifactory.example/api/pypi/simple/foo-bar/"
        );
        assert_eq!(
            upstream.credentials_for(&page),
            Some(("reader", Some("s3cret")))
        );
        let elsewhere = Url::parse("https://files.example/x.whl").unwrap();
        assert_eq!(upstream.credentials_for(&elsewhere), None);
    }

    #[test]
    fn rejects_what_cannot_be_a_base() {
        for bad in [
            "pypi.org/simple",
            "ftp://host/simple/",
            "https://host/simple/?x=1",
            "file:///srv/simple/",
        ] {
            assert!(bad.parse::<UpstreamUrl>().is_err(), "{bad}");
        }
        let error = "ftp://user:pw@host/"
            .parse::<UpstreamUrl>()
            .unwrap_err()
            .to_string();
        assert!(!error.contains("pw"), "{error}");
    }
}
