//! The vendor directory a build's cargo uses instead of crates.io: each locked crate's
//! `.crate` unpacked under the archive rules of ingest, with the `.cargo-checksum.json` of a
//! cargo directory source, and a cargo configuration that replaces crates.io with it and keeps
//! cargo offline. It is written into the build's read-only input, so the builder needs no
//! mount point of its own for it.

use std::path::Path;

use bytes::Bytes;

use super::lock::LockedCrate;
use crate::farm::records::Failure;
use crate::farm::resolve::BoxFuture;
use crate::ingest::{ArchiveLimits, unpack_crate};
use crate::pypi::Sha256Digest;

/// The vendor directory's name in the build's read-only input, which the containers see at
/// `/input`: `crates/` holds the crates, `config.toml` the cargo configuration.
pub const VENDOR_INPUT: &str = "cargo-vendor";

/// Installed as `$CARGO_HOME/config.toml` by the build and requires steps.
pub const CARGO_CONFIG: &str = r#"# Written by edelweiss: the crates.io crates of the sdist's Cargo.lock files, fetched before
# the build and checked against the lock's checksums, unpacked read-only. Cargo builds offline.
[source.crates-io]
replace-with = "edelweiss-vendored"

[source.edelweiss-vendored]
directory = "/input/cargo-vendor/crates"

[net]
offline = true
"#;

/// The most one crate may unpack to, and all of a build's crates together.
const MAX_CRATE_UNPACKED_BYTES: u64 = 1 << 30;
const MAX_VENDOR_UNPACKED_BYTES: u64 = 8 << 30;
const MAX_CRATE_ENTRIES: u64 = 100_000;

/// Where a build's crates come from: the blob store in the server, the server's worker API
/// on a remote worker.
pub trait CrateLoader: Send + Sync {
    /// The `.crate` file of `locked`.
    fn load<'a>(&'a self, locked: &'a LockedCrate) -> BoxFuture<'a, Result<Bytes, Failure>>;
}

fn package(message: String) -> Failure {
    Failure::package(message)
}

fn infrastructure(message: String) -> Failure {
    Failure::infrastructure(message)
}

/// Writes `directory` (the input's [`VENDOR_INPUT`]):
/// every crate of `crates` unpacked, one at a time, and the cargo configuration. Returns the
/// bytes unpacked.
pub async fn write_vendor_directory(
    directory: &Path,
    crates: &[LockedCrate],
    loader: &dyn CrateLoader,
) -> Result<u64, Failure> {
    let crates_directory = directory.join("crates");
    std::fs::create_dir_all(&crates_directory)
        .map_err(|error| infrastructure(format!("cannot create the vendor directory: {error}")))?;
    let mut unpacked = 0;
    for locked in crates {
        let bytes = loader.load(locked).await?;
        let actual = Sha256Digest::of(&bytes);
        if actual != locked.sha256 {
            return Err(package(format!(
                "crate {} {}: its sha256 is {actual}, but Cargo.lock says {}",
                locked.name, locked.version, locked.sha256
            )));
        }
        let limits = ArchiveLimits {
            max_entries: MAX_CRATE_ENTRIES,
            max_uncompressed_bytes: MAX_CRATE_UNPACKED_BYTES
                .min(MAX_VENDOR_UNPACKED_BYTES.saturating_sub(unpacked)),
            max_metadata_bytes: 0,
        };
        let (destination, locked_crate) = (crates_directory.clone(), locked.clone());
        let written = tokio::task::spawn_blocking(move || {
            let top = locked_crate.directory();
            let written = unpack_crate(&bytes, &top, &destination, &limits)?;
            let checksum = serde_json::json!({"files": {}, "package": locked_crate.sha256});
            let path = destination.join(&top).join(".cargo-checksum.json");
            std::fs::write(&path, checksum.to_string())
                .map_err(|source| crate::ingest::UnpackError::Io { path, source })?;
            Ok::<u64, crate::ingest::UnpackError>(written)
        })
        .await
        .map_err(|error| infrastructure(format!("unpacking a crate failed: {error}")))?;
        unpacked += written.map_err(|error| {
            let message = format!("crate {} {}: {error}", locked.name, locked.version);
            match error.is_archive() {
                true => package(message),
                false => infrastructure(message),
            }
        })?;
    }
    std::fs::write(directory.join("config.toml"), CARGO_CONFIG).map_err(|error| {
        infrastructure(format!("cannot write the cargo configuration: {error}"))
    })?;
    Ok(unpacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::FailureKind;

    fn crate_file(top: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        let paths: Vec<String> = files
            .iter()
            .map(|(path, _)| format!("{top}/{path}"))
            .collect();
        let entries: Vec<(&str, &[u8])> = paths
            .iter()
            .zip(files)
            .map(|(path, (_, bytes))| (path.as_str(), *bytes))
            .collect();
        crate::test_archives::tar_gz(&entries)
    }

    struct Files(Vec<(LockedCrate, Bytes)>);

    impl CrateLoader for Files {
        fn load<'a>(&'a self, locked: &'a LockedCrate) -> BoxFuture<'a, Result<Bytes, Failure>> {
            Box::pin(async move {
                Ok(self
                    .0
                    .iter()
                    .find(|(known, _)| known == locked)
                    .map(|(_, bytes)| bytes.clone())
                    .expect("a crate of the test"))
            })
        }
    }

    fn locked(name: &str, version: &str, bytes: &[u8]) -> LockedCrate {
        LockedCrate {
            name: name.to_string().try_into().unwrap(),
            version: version.to_string().try_into().unwrap(),
            sha256: Sha256Digest::of(bytes),
        }
    }

    /// The layout cargo's directory sources expect: `crates/<name>-<version>/` with the
    /// crate's files and a `.cargo-checksum.json` naming the `.crate`'s sha256, and a
    /// configuration that replaces crates.io with it.
    #[tokio::test]
    async fn the_vendor_directory_is_a_cargo_directory_source() {
        let cfg_if = crate_file(
            "cfg-if-1.0.0",
            &[("Cargo.toml", b"[package]\n"), ("src/lib.rs", b"")],
        );
        let libc = crate_file("libc-0.2.155", &[("Cargo.toml", b"[package]\n")]);
        let crates = vec![
            (locked("cfg-if", "1.0.0", &cfg_if), Bytes::from(cfg_if)),
            (locked("libc", "0.2.155", &libc), Bytes::from(libc)),
        ];
        let dir = tempfile::tempdir().unwrap();
        let vendor = dir.path().join("cargo-vendor");
        let list: Vec<LockedCrate> = crates.iter().map(|(locked, _)| locked.clone()).collect();
        let written = write_vendor_directory(&vendor, &list, &Files(crates.clone()))
            .await
            .unwrap();
        assert_eq!(written, "[package]\n".len() as u64 * 2);
        let checksum: serde_json::Value = serde_json::from_slice(
            &std::fs::read(vendor.join("crates/cfg-if-1.0.0/.cargo-checksum.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            checksum,
            serde_json::json!({"files": {}, "package": crates[0].0.sha256.to_hex()})
        );
        assert!(vendor.join("crates/cfg-if-1.0.0/src/lib.rs").is_file());
        assert!(vendor.join("crates/libc-0.2.155/Cargo.toml").is_file());
        let config: toml::Table = std::fs::read_to_string(vendor.join("config.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            config["source"]["crates-io"]["replace-with"].as_str(),
            Some("edelweiss-vendored")
        );
        assert_eq!(
            config["source"]["edelweiss-vendored"]["directory"].as_str(),
            Some(&*format!("/input/{VENDOR_INPUT}/crates"))
        );
        assert_eq!(config["net"]["offline"].as_bool(), Some(true));
    }

    /// Bytes that are not the locked crate, or a crate that unpacks outside its directory,
    /// fail the build as the package's, naming the crate.
    #[tokio::test]
    async fn a_wrong_or_hostile_crate_fails_the_build_by_name() {
        let good = crate_file("demo-1.0.0", &[("Cargo.toml", b"")]);
        let mut claimed = locked("demo", "1.0.0", &good);
        claimed.sha256 = Sha256Digest::of(b"something else");
        let dir = tempfile::tempdir().unwrap();
        let failure = write_vendor_directory(
            &dir.path().join("a"),
            std::slice::from_ref(&claimed),
            &Files(vec![(claimed.clone(), Bytes::from(good))]),
        )
        .await
        .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Package);
        assert!(
            failure
                .message
                .starts_with("crate demo 1.0.0: its sha256 is "),
            "{}",
            failure.message
        );

        let hostile = crate_file("other-1.0.0", &[("build.rs", b"")]);
        let locked = locked("demo", "1.0.0", &hostile);
        let failure = write_vendor_directory(
            &dir.path().join("b"),
            std::slice::from_ref(&locked),
            &Files(vec![(locked.clone(), Bytes::from(hostile))]),
        )
        .await
        .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Package);
        assert!(
            failure
                .message
                .contains("is not under the `demo-1.0.0/` directory"),
            "{}",
            failure.message
        );
        assert!(!dir.path().join("b/crates/other-1.0.0").exists());
    }
}
