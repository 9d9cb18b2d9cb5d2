//! What makes two distribution filenames name the same file of a release.
//!
//! An index holds one file per release and kind, whatever the filename's spelling: as on
//! PyPI, `Norm.Pkg-1.0.tar.gz`, `norm_pkg-1.0.tar.gz` and `norm_pkg-1.0.0.tar.gz` are one
//! sdist, and `demo-1.0-py3-none-any.whl` and `Demo-1.0.0-py3-none-any.whl` one wheel.
//! Otherwise a file refused for its content could come back under another spelling, and one
//! release would list two files that installers treat as interchangeable.

use std::collections::BTreeSet;

use pep440_rs::Version;

use super::filename::{DistFilename, SdistExtension};
use super::name::PackageName;

/// The normalized identity of a distribution file. Equal identities are the same file:
/// - the PEP 503 normalized project name;
/// - the PEP 440 version, compared as versions (`1.0` equals `1.0.0`, `1.0RC1` equals
///   `1.0rc1`);
/// - for a wheel, its build tag compared as PEP 427 sorts it (leading number, then the rest)
///   and its set of expanded tag triples, in lower case (`py2.py3` equals `py3.py2`);
/// - for an sdist, its kind (`.tar.gz` or legacy `.zip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistIdentity {
    name: PackageName,
    version: Version,
    kind: IdentityKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum IdentityKind {
    Wheel {
        build: Option<BuildTag>,
        tags: BTreeSet<String>,
    },
    Sdist(SdistExtension),
}

/// PEP 427: a build tag sorts as the tuple (its leading number, the rest), so `1` and
/// `01` are one build. The number is kept as its digits without leading zeros: only
/// equality is asked of it, and no length overflows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuildTag {
    number: String,
    rest: String,
}

impl BuildTag {
    fn parse(text: &str) -> Self {
        let rest = text.trim_start_matches(|c: char| c.is_ascii_digit());
        let digits = &text[..text.len() - rest.len()];
        Self {
            number: digits.trim_start_matches('0').to_string(),
            rest: rest.to_string(),
        }
    }
}

impl DistFilename {
    pub fn identity(&self) -> DistIdentity {
        let kind = match self {
            Self::Wheel(wheel) => IdentityKind::Wheel {
                build: wheel.build.as_deref().map(BuildTag::parse),
                tags: wheel
                    .tags
                    .iter()
                    .map(|triple| triple.to_string().to_ascii_lowercase())
                    .collect(),
            },
            Self::Sdist(sdist) => IdentityKind::Sdist(sdist.extension),
        };
        DistIdentity {
            name: self.name().clone(),
            version: self.version().clone(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(filename: &str) -> DistIdentity {
        filename.parse::<DistFilename>().unwrap().identity()
    }

    #[test]
    fn spellings_of_one_file_share_an_identity() {
        let same = [
            ("norm_pkg-1.0.tar.gz", "Norm.Pkg-1.0.tar.gz"),
            ("norm_pkg-1.0.tar.gz", "norm_pkg-1.0.0.tar.gz"),
            ("norm_pkg-1.0.tar.gz", "NORM-pkg-1.0.0.0.tar.gz"),
            ("demo-1.0rc1.tar.gz", "demo-1.0RC1.tar.gz"),
            ("demo-1.0-py3-none-any.whl", "Demo-1.0.0-py3-none-any.whl"),
            (
                "demo-1.0-py2.py3-none-any.whl",
                "demo-1.0-py3.py2-none-any.whl",
            ),
            (
                "demo-1.0-1-py3-none-any.whl",
                "demo-1.0-01-py3-none-any.whl",
            ),
        ];
        for (first, second) in same {
            assert_eq!(identity(first), identity(second), "{first} vs {second}");
        }
    }

    #[test]
    fn other_versions_kinds_tags_and_builds_are_other_files() {
        let different = [
            ("demo-1.0.tar.gz", "demo-1.0.1.tar.gz"),
            ("demo-1.0.tar.gz", "demo-1.0.post1.tar.gz"),
            ("demo-1.0.tar.gz", "demo-1.0+local.tar.gz"),
            ("demo-1.0.tar.gz", "demo-1.0.zip"),
            ("demo-1.0.tar.gz", "demo_two-1.0.tar.gz"),
            ("demo-1.0-py3-none-any.whl", "demo-1.0-py2.py3-none-any.whl"),
            ("demo-1.0-py3-none-any.whl", "demo-1.0-1-py3-none-any.whl"),
            (
                "demo-1.0-1a-py3-none-any.whl",
                "demo-1.0-1b-py3-none-any.whl",
            ),
            (
                "demo-1.0-cp313-cp313-musllinux_1_2_x86_64.whl",
                "demo-1.0-cp313-cp313-musllinux_1_1_x86_64.whl",
            ),
        ];
        for (first, second) in different {
            assert_ne!(identity(first), identity(second), "{first} vs {second}");
        }
    }
}
