//! Compatibility tags: PEP 425 triples, with the platform part parsed for the Linux
//! families we serve (PEP 600 `manylinux_X_Y`, its legacy aliases, and PEP 656
//! `musllinux_X_Y`).

use std::fmt;
use std::str::FromStr;

use super::excerpt::excerpt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    #[error(
        "`{}` is not a tag: each tag is non-empty ASCII letters, digits and `_`, several joined by `.`",
        excerpt(.input)
    )]
    Malformed { input: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
    I686,
    Armv7l,
    Ppc64le,
    S390x,
    Riscv64,
    Other(String),
}

impl Arch {
    pub fn parse(text: &str) -> Self {
        match text {
            "x86_64" => Self::X86_64,
            "aarch64" => Self::Aarch64,
            "i686" => Self::I686,
            "armv7l" => Self::Armv7l,
            "ppc64le" => Self::Ppc64le,
            "s390x" => Self::S390x,
            "riscv64" => Self::Riscv64,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
            Self::I686 => "i686",
            Self::Armv7l => "armv7l",
            Self::Ppc64le => "ppc64le",
            Self::S390x => "s390x",
            Self::Riscv64 => "riscv64",
            Self::Other(other) => other,
        }
    }
}

/// The platform part of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlatformTag {
    Any,
    /// PEP 656: built against musl `major.minor`.
    Musllinux {
        major: u16,
        minor: u16,
        arch: Arch,
    },
    /// PEP 600, with `manylinux1`/`2010`/`2014` parsed to their glibc versions; `legacy`
    /// keeps the alias so the tag prints as it was written.
    Manylinux {
        major: u16,
        minor: u16,
        arch: Arch,
        legacy: Option<&'static str>,
    },
    /// Plain `linux_<arch>`: a local build that indexes should not offer to other machines.
    Linux {
        arch: Arch,
    },
    /// macOS, Windows and anything else, kept verbatim.
    Other(String),
}

impl PlatformTag {
    /// Whether a wheel with this platform tag installs on a machine whose most specific
    /// platform tag is `target` (PEP 600 and PEP 656: same family and arch, libc version
    /// at most the target's).
    pub fn runs_on(&self, target: &PlatformTag) -> bool {
        use PlatformTag::*;
        match (self, target) {
            (Any, _) => true,
            (
                Musllinux { major, minor, arch },
                Musllinux {
                    major: target_major,
                    minor: target_minor,
                    arch: target_arch,
                },
            )
            | (
                Manylinux {
                    major, minor, arch, ..
                },
                Manylinux {
                    major: target_major,
                    minor: target_minor,
                    arch: target_arch,
                    ..
                },
            ) => arch == target_arch && major == target_major && minor <= target_minor,
            (wheel, target) => wheel == target,
        }
    }

    pub fn is_musllinux(&self) -> bool {
        matches!(self, Self::Musllinux { .. })
    }
}

fn split_linux_tag<'a>(text: &'a str, family: &str) -> Option<(u16, u16, &'a str)> {
    let rest = text.strip_prefix(family)?.strip_prefix('_')?;
    let (major, rest) = rest.split_once('_')?;
    let (minor, arch) = rest.split_once('_')?;
    Some((major.parse().ok()?, minor.parse().ok()?, arch))
}

const LEGACY_MANYLINUX: [(&str, u16, u16); 3] = [
    ("manylinux1", 2, 5),
    ("manylinux2010", 2, 12),
    ("manylinux2014", 2, 17),
];

impl FromStr for PlatformTag {
    type Err = TagError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        validate_tag_part(text)?;
        if text == "any" {
            return Ok(Self::Any);
        }
        if let Some((major, minor, arch)) = split_linux_tag(text, "musllinux") {
            return Ok(Self::Musllinux {
                major,
                minor,
                arch: Arch::parse(arch),
            });
        }
        if let Some((major, minor, arch)) = split_linux_tag(text, "manylinux") {
            return Ok(Self::Manylinux {
                major,
                minor,
                arch: Arch::parse(arch),
                legacy: None,
            });
        }
        for (alias, major, minor) in LEGACY_MANYLINUX {
            if let Some(arch) = text
                .strip_prefix(alias)
                .and_then(|rest| rest.strip_prefix('_'))
            {
                let arch = Arch::parse(arch);
                return Ok(Self::Manylinux {
                    major,
                    minor,
                    arch,
                    legacy: Some(alias),
                });
            }
        }
        if let Some(arch) = text.strip_prefix("linux_") {
            return Ok(Self::Linux {
                arch: Arch::parse(arch),
            });
        }
        Ok(Self::Other(text.to_string()))
    }
}

impl fmt::Display for PlatformTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Musllinux { major, minor, arch } => {
                write!(f, "musllinux_{major}_{minor}_{}", arch.as_str())
            }
            Self::Manylinux {
                arch,
                legacy: Some(alias),
                ..
            } => write!(f, "{alias}_{}", arch.as_str()),
            Self::Manylinux {
                major,
                minor,
                arch,
                legacy: None,
            } => {
                write!(f, "manylinux_{major}_{minor}_{}", arch.as_str())
            }
            Self::Linux { arch } => write!(f, "linux_{}", arch.as_str()),
            Self::Other(text) => f.write_str(text),
        }
    }
}

fn validate_tag_part(text: &str) -> Result<(), TagError> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(TagError::Malformed {
            input: text.to_string(),
        })
    }
}

/// One expanded `python-abi-platform` triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagTriple {
    pub python: String,
    pub abi: String,
    pub platform: PlatformTag,
}

impl TagTriple {
    /// Expands PEP 425 compressed tag sets (`py2.py3-none-any`) into every triple.
    pub fn expand(python: &str, abi: &str, platform: &str) -> Result<Vec<Self>, TagError> {
        let mut triples = Vec::new();
        for python in python.split('.') {
            validate_tag_part(python)?;
            for abi in abi.split('.') {
                validate_tag_part(abi)?;
                for platform in platform.split('.') {
                    let platform = platform.parse()?;
                    triples.push(Self {
                        python: python.to_string(),
                        abi: abi.to_string(),
                        platform,
                    });
                }
            }
        }
        Ok(triples)
    }
}

impl FromStr for TagTriple {
    type Err = TagError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || TagError::Malformed {
            input: text.to_string(),
        };
        let mut parts = text.splitn(3, '-');
        let (Some(python), Some(abi), Some(platform)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let mut triples = Self::expand(python, abi, platform)?;
        if triples.len() != 1 {
            return Err(malformed());
        }
        Ok(triples.remove(0))
    }
}

impl fmt::Display for TagTriple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.python, self.abi, self.platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> PlatformTag {
        text.parse().unwrap()
    }

    #[test]
    fn parses_linux_families_and_round_trips() {
        for text in [
            "any",
            "musllinux_1_2_x86_64",
            "musllinux_1_1_aarch64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux1_i686",
            "linux_x86_64",
            "macosx_11_0_arm64",
            "win_amd64",
        ] {
            assert_eq!(platform(text).to_string(), text);
        }
        assert_eq!(
            platform("musllinux_1_2_x86_64"),
            PlatformTag::Musllinux {
                major: 1,
                minor: 2,
                arch: Arch::X86_64
            }
        );
        assert!(matches!(
            platform("manylinux2014_x86_64"),
            PlatformTag::Manylinux {
                major: 2,
                minor: 17,
                ..
            }
        ));
    }

    #[test]
    fn musllinux_compatibility_follows_pep_656() {
        let target = platform("musllinux_1_2_x86_64");
        assert!(platform("musllinux_1_1_x86_64").runs_on(&target));
        assert!(platform("musllinux_1_2_x86_64").runs_on(&target));
        assert!(platform("any").runs_on(&target));
        assert!(!platform("musllinux_1_3_x86_64").runs_on(&target));
        assert!(!platform("musllinux_1_2_aarch64").runs_on(&target));
        assert!(!platform("manylinux_2_17_x86_64").runs_on(&target));
        assert!(!platform("linux_x86_64").runs_on(&target));
        assert!(platform("manylinux2014_x86_64").runs_on(&platform("manylinux_2_28_x86_64")));
    }

    #[test]
    fn expands_compressed_tag_sets() {
        let triples = TagTriple::expand("py2.py3", "none", "any").unwrap();
        let printed: Vec<String> = triples.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["py2-none-any", "py3-none-any"]);
    }

    #[test]
    fn rejects_hostile_tags() {
        for bad in ["", "cp3/13", "..", "x\0y", "musl linux"] {
            assert!(bad.parse::<PlatformTag>().is_err(), "{bad:?}");
        }
        assert!("cp313-cp313".parse::<TagTriple>().is_err());
    }
}
