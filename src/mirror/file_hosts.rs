//! Where upstream files may be fetched from: the hosts in `mirror.file_hosts` and each
//! upstream's own host. A URL elsewhere, even another port of the same address, is never
//! asked (an upstream page must not make edelweiss reach its internal network).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use url::{Host, Url};

use super::UpstreamUrl;

/// One `mirror.file_hosts` entry: `host` (the default ports of http and https) or
/// `host:port`; an IPv6 address in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHost {
    /// As `Url::host_str` shows it: lowercase, IPv6 in brackets.
    host: String,
    port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not a file host: {reason}; write `host` or `host:port`")]
pub struct FileHostError {
    input: String,
    reason: &'static str,
}

impl FileHost {
    pub fn pypi_files() -> Self {
        "files.pythonhosted.org"
            .parse()
            .expect("PyPI's file host is a valid host")
    }

    fn matches(&self, url: &Url) -> bool {
        let port_matches = match self.port {
            Some(port) => url.port_or_known_default() == Some(port),
            None => url.port().is_none(),
        };
        url.host_str() == Some(self.host.as_str()) && port_matches
    }
}

impl FromStr for FileHost {
    type Err = FileHostError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| FileHostError {
            input: input.to_string(),
            reason,
        };
        if input.contains(['/', '@', '?', '#', '\\']) || input.contains(char::is_whitespace) {
            return Err(error("it has a scheme, path, user or space"));
        }
        let (host, port) = match input.rfind(':') {
            Some(colon) if !input[colon..].contains(']') => {
                (&input[..colon], Some(&input[colon + 1..]))
            }
            _ => (input, None),
        };
        let port = port
            .map(|port| {
                port.parse::<u16>()
                    .map_err(|_| error("the port is not a number"))
            })
            .transpose()?;
        let host = Host::parse(host).map_err(|_| error("not a host name or address"))?;
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for FileHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl<'de> Deserialize<'de> for FileHost {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The configured file hosts and the configured upstreams, whose own hosts are always
/// allowed.
#[derive(Debug, Clone)]
pub struct FileHosts {
    configured: Arc<[FileHost]>,
    upstreams: Arc<[UpstreamUrl]>,
}

impl FileHosts {
    pub fn new(configured: &[FileHost], upstreams: &[UpstreamUrl]) -> Self {
        Self {
            configured: configured.into(),
            upstreams: upstreams.into(),
        }
    }

    fn is_web(url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https")
    }

    /// Whether a file `upstream` lists at `url` may be fetched.
    pub fn allows(&self, upstream: &UpstreamUrl, url: &Url) -> bool {
        Self::is_web(url)
            && (upstream.is_own_host(url) || self.configured.iter().any(|host| host.matches(url)))
    }

    /// Whether a redirect may lead to `url`: the redirect policy belongs to the one client
    /// all upstreams share, so any configured upstream's host counts.
    pub fn allows_redirect(&self, url: &Url) -> bool {
        Self::is_web(url)
            && (self
                .upstreams
                .iter()
                .any(|upstream| upstream.is_own_host(url))
                || self.configured.iter().any(|host| host.matches(url)))
    }
}

/// `scheme://host:port` of a URL, the part a log line about hosts needs: no user,
/// password, path or query of an upstream's choosing.
pub fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or("(no host)"),
        url.port_or_known_default().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn host_and_port_are_both_compared() {
        let upstream: UpstreamUrl = "http://127.0.0.1:8000/simple/".parse().unwrap();
        let hosts = FileHosts::new(
            &[
                FileHost::pypi_files(),
                "mirror.example:8443".parse().unwrap(),
            ],
            std::slice::from_ref(&upstream),
        );
        for allowed in [
            "http://127.0.0.1:8000/files/a-1.0.tar.gz",
            "https://files.pythonhosted.org/packages/a-1.0.tar.gz",
            "http://FILES.pythonhosted.org/a-1.0.tar.gz",
            "https://mirror.example:8443/a-1.0.tar.gz",
        ] {
            assert!(hosts.allows(&upstream, &url(allowed)), "{allowed}");
        }
        for refused in [
            "http://127.0.0.1:8001/files/a-1.0.tar.gz",
            "http://127.0.0.2:8000/files/a-1.0.tar.gz",
            "https://files.pythonhosted.org:8443/a-1.0.tar.gz",
            "https://mirror.example/a-1.0.tar.gz",
            "ftp://files.pythonhosted.org/a-1.0.tar.gz",
            "file:///etc/passwd",
            "data:text/plain,a-1.0.tar.gz",
        ] {
            assert!(!hosts.allows(&upstream, &url(refused)), "{refused}");
        }
    }

    #[test]
    fn entries_are_hosts_with_an_optional_port() {
        for (input, shown) in [
            ("files.pythonhosted.org", "files.pythonhosted.org"),
            ("Files.Example:8080", "files.example:8080"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("[::1]:9000", "[::1]:9000"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(input.parse::<FileHost>().unwrap().to_string(), shown);
        }
        for bad in [
            "",
            "https://files.example",
            "files.example/x",
            "user@files.example",
            "files.example:http",
            "files.example:70000",
            "a b",
            "::1",
        ] {
            assert!(bad.parse::<FileHost>().is_err(), "{bad:?}");
        }
    }
}
