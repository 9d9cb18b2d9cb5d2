//! An sdist's build requirements as data (PEP 517/518): `[build-system] requires` read from
//! the `pyproject.toml` at the top of the archive, never by running anything of the package.

use std::io::Read as _;

use serde::Deserialize;

/// What pip assumes for an sdist without `[build-system]` (PEP 518's default, with the
/// `wheel` that setuptools' legacy backend asks for).
pub const DEFAULT_REQUIRES: [&str; 2] = ["setuptools>=40.8.0", "wheel"];

/// The largest `pyproject.toml` read; a larger one is refused, not truncated.
const MAX_PYPROJECT_BYTES: u64 = 1 << 20;
/// Entries looked at before giving up on finding `pyproject.toml`.
const MAX_ENTRIES: usize = 200_000;
/// Requirements taken from one `[build-system]`.
const MAX_REQUIRES: usize = 200;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildSystemError {
    #[error("the sdist {filename} cannot be read: {reason}")]
    Archive { filename: String, reason: String },
    #[error("{filename}: pyproject.toml is larger than {MAX_PYPROJECT_BYTES} bytes")]
    TooLarge { filename: String },
    #[error("{filename}: pyproject.toml is not valid TOML with a valid [build-system]: {reason}")]
    Invalid { filename: String, reason: String },
    #[error("{filename}: [build-system] requires {count} packages; at most {MAX_REQUIRES}")]
    TooManyRequires { filename: String, count: usize },
}

/// The `[build-system]` of an sdist, or its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSystem {
    /// PEP 508 requirement strings.
    pub requires: Vec<String>,
    /// Whether these came from the sdist (false: the default).
    pub declared: bool,
}

#[derive(Deserialize)]
struct PyProject {
    #[serde(rename = "build-system")]
    build_system: Option<Table>,
}

#[derive(Deserialize)]
struct Table {
    requires: Option<Vec<String>>,
}

impl BuildSystem {
    fn default_requires() -> Self {
        Self {
            requires: DEFAULT_REQUIRES
                .iter()
                .map(|text| text.to_string())
                .collect(),
            declared: false,
        }
    }

    /// Reads `<top>/pyproject.toml` from the sdist `filename` (`.tar.gz` or `.zip`).
    pub fn of_sdist(filename: &str, bytes: &[u8]) -> Result<Self, BuildSystemError> {
        let text = if filename.ends_with(".zip") {
            pyproject_in_zip(filename, bytes)?
        } else {
            pyproject_in_tar_gz(filename, bytes)?
        };
        match text {
            Some(text) => Self::parse(filename, &text),
            None => Ok(Self::default_requires()),
        }
    }

    /// `[build-system]` from pyproject.toml text. A pyproject without the table, or a table
    /// without `requires`, gets the default (as pip does).
    pub fn parse(filename: &str, text: &str) -> Result<Self, BuildSystemError> {
        let invalid = |reason: String| BuildSystemError::Invalid {
            filename: filename.to_string(),
            reason,
        };
        let pyproject: PyProject =
            toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let Some(requires) = pyproject.build_system.and_then(|table| table.requires) else {
            return Ok(Self::default_requires());
        };
        if requires.len() > MAX_REQUIRES {
            return Err(BuildSystemError::TooManyRequires {
                filename: filename.to_string(),
                count: requires.len(),
            });
        }
        for requirement in &requires {
            super::resolve::parse_requirement(requirement)
                .map_err(|error| invalid(error.to_string()))?;
        }
        Ok(Self {
            requires,
            declared: true,
        })
    }
}

/// Whether an archive path is `<top>/pyproject.toml`.
fn is_top_pyproject(path: &str) -> bool {
    let mut parts = path.trim_start_matches("./").split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(top), Some("pyproject.toml"), None) if !top.is_empty())
}

fn read_bounded(filename: &str, reader: impl std::io::Read) -> Result<String, BuildSystemError> {
    let mut text = String::new();
    reader
        .take(MAX_PYPROJECT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| BuildSystemError::Archive {
            filename: filename.to_string(),
            reason: format!("pyproject.toml: {error}"),
        })?;
    if text.len() as u64 > MAX_PYPROJECT_BYTES {
        return Err(BuildSystemError::TooLarge {
            filename: filename.to_string(),
        });
    }
    Ok(text)
}

fn pyproject_in_tar_gz(filename: &str, bytes: &[u8]) -> Result<Option<String>, BuildSystemError> {
    let archive_error = |error: std::io::Error| BuildSystemError::Archive {
        filename: filename.to_string(),
        reason: error.to_string(),
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(archive_error)?.take(MAX_ENTRIES) {
        let entry = entry.map_err(archive_error)?;
        let path = entry.path().map_err(archive_error)?;
        if entry.header().entry_type().is_file() && is_top_pyproject(&path.to_string_lossy()) {
            return read_bounded(filename, entry).map(Some);
        }
    }
    Ok(None)
}

fn pyproject_in_zip(filename: &str, bytes: &[u8]) -> Result<Option<String>, BuildSystemError> {
    let archive_error = |error: zip::result::ZipError| BuildSystemError::Archive {
        filename: filename.to_string(),
        reason: error.to_string(),
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(archive_error)?;
    let Some(name) = archive
        .file_names()
        .take(MAX_ENTRIES)
        .filter_map(Result::ok)
        .find(|name| is_top_pyproject(name))
        .map(|name| name.into_owned())
    else {
        return Ok(None);
    };
    let entry = archive.by_name(&name).map_err(archive_error)?;
    read_bounded(filename, entry).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_archives::tar_gz;

    #[test]
    fn declared_requirements_are_read_from_the_top_pyproject() {
        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", b"Metadata-Version: 2.1\n"),
            (
                "demo-1.0/tests/pyproject.toml",
                b"[build-system]\nrequires = [\"nested\"]\n",
            ),
            (
                "demo-1.0/pyproject.toml",
                b"[build-system]\nrequires = [\"hatchling>=1.18\", \"hatch-vcs\"]\nbuild-backend = \"hatchling.build\"\n",
            ),
        ]);
        let system = BuildSystem::of_sdist("demo-1.0.tar.gz", &sdist).unwrap();
        assert_eq!(system.requires, ["hatchling>=1.18", "hatch-vcs"]);
        assert!(system.declared);
    }

    #[test]
    fn no_pyproject_or_no_table_gets_setuptools() {
        let sdist = tar_gz(&[("demo-1.0/setup.py", b"from setuptools import setup\n")]);
        let system = BuildSystem::of_sdist("demo-1.0.tar.gz", &sdist).unwrap();
        assert_eq!(system.requires, DEFAULT_REQUIRES);
        assert!(!system.declared);
        let system =
            BuildSystem::parse("demo-1.0.tar.gz", "[tool.black]\nline-length = 99\n").unwrap();
        assert_eq!(system.requires, DEFAULT_REQUIRES);
    }

    #[test]
    fn a_zip_sdist_is_read_too() {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut bytes);
        writer
            .start_file(
                "demo-1.0/pyproject.toml",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
        std::io::Write::write_all(
            &mut writer,
            b"[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\n",
        )
        .unwrap();
        writer.finish().unwrap();
        let system = BuildSystem::of_sdist("demo-1.0.zip", bytes.get_ref()).unwrap();
        assert_eq!(system.requires, ["flit_core >=3.2,<4"]);
    }

    /// Bad input is refused with the file named, and nothing of it is guessed at.
    #[test]
    fn hostile_pyprojects_are_refused_by_name() {
        let invalid = BuildSystem::parse(
            "bad-1.0.tar.gz",
            "[build-system]\nrequires = \"setuptools\"\n",
        );
        assert!(
            matches!(invalid, Err(BuildSystemError::Invalid { filename, .. }) if filename == "bad-1.0.tar.gz")
        );
        let not_pep508 = BuildSystem::parse(
            "bad-1.0.tar.gz",
            "[build-system]\nrequires = [\"setup tools ==\"]\n",
        );
        assert!(
            matches!(not_pep508, Err(BuildSystemError::Invalid { .. })),
            "{not_pep508:?}"
        );
        let huge = vec![b'#'; MAX_PYPROJECT_BYTES as usize + 10];
        let sdist = tar_gz(&[("big-1.0/pyproject.toml", &huge)]);
        assert_eq!(
            BuildSystem::of_sdist("big-1.0.tar.gz", &sdist),
            Err(BuildSystemError::TooLarge {
                filename: "big-1.0.tar.gz".into()
            })
        );
        let many = format!(
            "[build-system]\nrequires = [{}]\n",
            vec!["\"a\""; MAX_REQUIRES + 1].join(",")
        );
        assert!(matches!(
            BuildSystem::parse("many-1.0.tar.gz", &many),
            Err(BuildSystemError::TooManyRequires { .. })
        ));
        assert!(matches!(
            BuildSystem::of_sdist("junk-1.0.tar.gz", b"not gzip"),
            Err(BuildSystemError::Archive { .. })
        ));
    }
}
