//! `Cargo.lock` as data: the crates.io packages it pins, each with its name, version and the
//! sha256 of its `.crate` file. Path packages (no `source`: the sdist's own crates) need
//! nothing; any other source (git, another registry) is refused, since an offline build could
//! not have it and edelweiss fetches from crates.io alone.
//! See <https://doc.rust-lang.org/cargo/guide/cargo-toml-vs-cargo-lock.html>.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pypi::{Sha256Digest, excerpt};

/// The most packages one build may lock (crates.io and path packages together): large
/// workspaces lock a few hundred, and the list travels in a remote worker's lease offer.
pub const MAX_LOCKED_PACKAGES: usize = 2_000;

/// The spellings of crates.io's index in `source` (git index, then sparse index).
const CRATES_IO_SOURCES: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("{path} is not a valid Cargo.lock: {}", excerpt(.reason))]
    Invalid { path: String, reason: String },
    #[error(
        "{path}: crate `{name}` {version} comes from `{}`; only crates.io crates and the sdist's own path crates can be vendored for an offline build",
        excerpt(.origin)
    )]
    Source {
        path: String,
        name: String,
        version: String,
        origin: String,
    },
    #[error("{path}: `{}` is not a crate name", excerpt(.name))]
    Name { path: String, name: String },
    #[error("{path}: crate `{name}` has version `{}`, which is not a semver version", excerpt(.version))]
    Version {
        path: String,
        name: String,
        version: String,
    },
    #[error("{path}: crate `{name}` {version} has no sha256 checksum")]
    NoChecksum {
        path: String,
        name: String,
        version: String,
    },
    #[error("{path}: crate `{name}` {version} has the checksum `{}`, which is not a sha256 in hex", excerpt(.checksum))]
    Checksum {
        path: String,
        name: String,
        version: String,
        checksum: String,
    },
    #[error("the sdist's Cargo.lock files give crate `{name}` {version} two checksums")]
    Conflict { name: String, version: String },
    #[error("the sdist's Cargo.lock files lock more than {MAX_LOCKED_PACKAGES} packages")]
    TooMany,
}

/// A crates.io package name: ASCII letters, digits, `-` and `_`, starting with a letter or
/// digit, at most 64 characters (crates.io's rule, which also keeps it a safe file name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CrateName(String);

impl TryFrom<String> for CrateName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        match valid {
            true => Ok(Self(name)),
            false => Err(format!("`{}` is not a crate name", excerpt(&name))),
        }
    }
}

impl From<CrateName> for String {
    fn from(name: CrateName) -> Self {
        name.0
    }
}

impl fmt::Display for CrateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A semver version as Cargo.lock writes it: `MAJOR.MINOR.PATCH`, then an optional
/// `-pre.release` and `+build` of dot-separated ASCII letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CrateVersion(String);

fn is_identifier_list(text: &str) -> bool {
    text.split('.')
        .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

impl TryFrom<String> for CrateVersion {
    type Error = String;

    fn try_from(version: String) -> Result<Self, String> {
        let (rest, build) = match version.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (version.as_str(), None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let valid = version.len() <= 64
            && numbers.len() == 3
            && numbers.iter().all(|number| {
                !number.is_empty()
                    && number.len() <= 20
                    && number.bytes().all(|b| b.is_ascii_digit())
            })
            && pre.is_none_or(is_identifier_list)
            && build.is_none_or(is_identifier_list);
        match valid {
            true => Ok(Self(version)),
            false => Err(format!("`{}` is not a semver version", excerpt(&version))),
        }
    }
}

impl From<CrateVersion> for String {
    fn from(version: CrateVersion) -> Self {
        version.0
    }
}

impl fmt::Display for CrateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A crates.io crate pinned by a Cargo.lock: its `.crate` file is `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockedCrate {
    pub name: CrateName,
    pub version: CrateVersion,
    pub sha256: Sha256Digest,
}

impl LockedCrate {
    /// `<name>-<version>`: the top directory of its `.crate` archive, and its directory in
    /// the vendor directory.
    pub fn directory(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// The file name the registry serves it under.
    pub fn file_name(&self) -> String {
        format!("{}.crate", self.directory())
    }
}

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
    /// Version 1 locks keep checksums here: `"checksum NAME VERSION (SOURCE)" = "<sha256>"`.
    #[serde(default)]
    metadata: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// The crates.io crates of one Cargo.lock (`path` names it in errors), in the lock's order.
pub fn parse_lock(path: &str, text: &str) -> Result<Vec<LockedCrate>, LockError> {
    let lock: LockFile = toml::from_str(text).map_err(|error| LockError::Invalid {
        path: path.to_string(),
        reason: error.to_string(),
    })?;
    if lock.package.len() > MAX_LOCKED_PACKAGES {
        return Err(LockError::TooMany);
    }
    let mut crates = Vec::new();
    for package in &lock.package {
        if let Some(locked) = locked_crate(path, package, &lock.metadata)? {
            crates.push(locked);
        }
    }
    Ok(crates)
}

/// A package's crate, or `None` for a path package.
fn locked_crate(
    path: &str,
    package: &LockPackage,
    metadata: &BTreeMap<String, toml::Value>,
) -> Result<Option<LockedCrate>, LockError> {
    let Some(source) = &package.source else {
        return Ok(None);
    };
    let name = CrateName::try_from(package.name.clone()).map_err(|_| LockError::Name {
        path: path.to_string(),
        name: package.name.clone(),
    })?;
    let version =
        CrateVersion::try_from(package.version.clone()).map_err(|_| LockError::Version {
            path: path.to_string(),
            name: name.to_string(),
            version: package.version.clone(),
        })?;
    if !CRATES_IO_SOURCES.contains(&source.as_str()) {
        return Err(LockError::Source {
            path: path.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            origin: source.clone(),
        });
    }
    let checksum = package.checksum.clone().or_else(|| {
        metadata
            .get(&format!("checksum {name} {version} ({source})"))
            .and_then(|value| value.as_str())
            .map(str::to_string)
    });
    let Some(checksum) = checksum else {
        return Err(LockError::NoChecksum {
            path: path.to_string(),
            name: name.to_string(),
            version: version.to_string(),
        });
    };
    let sha256 = checksum.parse().map_err(|_| LockError::Checksum {
        path: path.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        checksum: checksum.clone(),
    })?;
    Ok(Some(LockedCrate {
        name,
        version,
        sha256,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG_IF: &str = "baf1de4339761588bc0619e3cbc0120ee582ebb74b53b4efbf79117bd2da40fd";
    const LIBC: &str = "4ec2a862134d2a7d32d7983ddcdd1c4923530833c9f2ea1a44fc5fa473989058";

    #[test]
    fn a_version_4_lock_gives_its_crates_io_crates_and_skips_path_crates() {
        let text = format!(
            r#"# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "cfg-if"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{CFG_IF}"

[[package]]
name = "demo"
version = "0.1.0"
dependencies = ["cfg-if", "libc"]

[[package]]
name = "libc"
version = "0.2.155"
source = "sparse+https://index.crates.io/"
checksum = "{LIBC}"
"#
        );
        let crates = parse_lock("demo-0.1.0/Cargo.lock", &text).unwrap();
        let names: Vec<String> = crates.iter().map(LockedCrate::directory).collect();
        assert_eq!(names, ["cfg-if-1.0.0", "libc-0.2.155"]);
        assert_eq!(crates[0].sha256.to_hex(), CFG_IF);
        assert_eq!(crates[1].file_name(), "libc-0.2.155.crate");
    }

    /// Version 1 locks (Cargo before 1.41) keep checksums in `[metadata]`.
    #[test]
    fn a_version_1_lock_takes_checksums_from_its_metadata() {
        let text = format!(
            r#"[[package]]
name = "cfg-if"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[metadata]
"checksum cfg-if 1.0.0 (registry+https://github.com/rust-lang/crates.io-index)" = "{CFG_IF}"
"#
        );
        let crates = parse_lock("Cargo.lock", &text).unwrap();
        assert_eq!(crates.len(), 1);
        assert_eq!(crates[0].sha256.to_hex(), CFG_IF);
    }

    fn one_package(fields: &str) -> Result<Vec<LockedCrate>, LockError> {
        parse_lock("x-1.0/Cargo.lock", &format!("[[package]]\n{fields}\n"))
    }

    /// Each refusal names the lock file and the crate, in one line.
    #[test]
    fn sources_edelweiss_cannot_vendor_are_refused_by_name() {
        let git = one_package(
            "name = \"demo-git\"\nversion = \"0.3.0\"\nsource = \"git+https://github.com/example/demo-git?rev=abc#abc123\"",
        )
        .unwrap_err();
        assert_eq!(
            git.to_string(),
            "x-1.0/Cargo.lock: crate `demo-git` 0.3.0 comes from `git+https://github.com/example/demo-git?rev=abc#abc123`; only crates.io crates and the sdist's own path crates can be vendored for an offline build"
        );
        let other_registry = one_package(
            "name = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://example.com/index\"\nchecksum = \"00\"",
        );
        assert!(matches!(other_registry, Err(LockError::Source { .. })));
        let no_checksum = one_package(
            "name = \"a\"\nversion = \"1.0.0\"\nsource = \"sparse+https://index.crates.io/\"",
        );
        assert!(matches!(no_checksum, Err(LockError::NoChecksum { .. })));
        let bad_checksum = one_package(
            "name = \"a\"\nversion = \"1.0.0\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"ABC\"",
        );
        assert!(matches!(bad_checksum, Err(LockError::Checksum { .. })));
        assert!(matches!(
            parse_lock("Cargo.lock", "[[package]]\nname = 1\n"),
            Err(LockError::Invalid { .. })
        ));
    }

    /// Names and versions become directory names: anything else than crates.io's and
    /// semver's characters is refused before a path is made of it.
    #[test]
    fn names_and_versions_are_parsed_before_they_become_paths() {
        for bad in ["../etc", "a/b", "", ".hidden", "a b", "é", &"a".repeat(65)] {
            assert!(CrateName::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        for good in ["cfg-if", "pyo3_build_config", "x", "1password"] {
            assert!(CrateName::try_from(good.to_string()).is_ok(), "{good:?}");
        }
        for bad in [
            "1.0",
            "1.0.0/..",
            "../1.0.0",
            "1.0.0-",
            "1.0.0+",
            "1..0.0",
            "a.b.c",
            "1.0.0-a..b",
        ] {
            assert!(CrateVersion::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        for good in [
            "1.0.0",
            "0.2.155",
            "1.0.0-alpha.1",
            "0.1.0+wasi-snapshot-preview1",
            "2.0.0-rc.1+build.5",
        ] {
            assert!(CrateVersion::try_from(good.to_string()).is_ok(), "{good:?}");
        }
        let hostile = one_package(
            "name = \"../../etc\"\nversion = \"1.0.0\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"00\"",
        );
        assert!(matches!(hostile, Err(LockError::Name { .. })));
        let hostile = one_package(
            "name = \"a\"\nversion = \"1.0.0/../../x\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"00\"",
        );
        assert!(matches!(hostile, Err(LockError::Version { .. })));
    }

    #[test]
    fn a_lock_of_too_many_packages_is_refused() {
        let text =
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n".repeat(MAX_LOCKED_PACKAGES + 1);
        assert_eq!(parse_lock("Cargo.lock", &text), Err(LockError::TooMany));
    }
}
