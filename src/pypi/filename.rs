//! Distribution filenames: wheels per PEP 427/491 and sdists per the source distribution
//! format spec (`{name}-{version}.tar.gz`, with legacy `.zip` accepted).

use std::fmt;
use std::str::FromStr;

use pep440_rs::Version;

use super::excerpt::excerpt;
use super::name::{PackageName, parse_package_name};
use super::tags::{TagError, TagTriple};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilenameError {
    #[error(
        "`{}` is not a distribution filename: it must end in `.whl`, `.tar.gz` or `.zip`",
        excerpt(.input)
    )]
    UnknownExtension { input: String },
    #[error(
        "`{}` is not a valid filename: it contains `/`, `\\`, NUL, a control character or non-ASCII text",
        excerpt(.input)
    )]
    UnsafeCharacters { input: String },
    #[error(
        "`{}` is not a wheel filename: expected `{{name}}-{{version}}(-{{build}})?-{{python}}-{{abi}}-{{platform}}.whl`",
        excerpt(.input)
    )]
    WheelShape { input: String },
    #[error(
        "`{}` is not an sdist filename: expected `{{name}}-{{version}}.tar.gz`",
        excerpt(.input)
    )]
    SdistShape { input: String },
    #[error("`{}`: `{}` is not a valid project name", excerpt(.input), excerpt(.name))]
    Name { input: String, name: String },
    #[error("`{}`: `{}` is not a PEP 440 version", excerpt(.input), excerpt(.version))]
    Version { input: String, version: String },
    #[error(
        "`{}`: the build tag `{}` must start with a digit",
        excerpt(.input),
        excerpt(.build)
    )]
    BuildTag { input: String, build: String },
    #[error("`{}`: {source}", excerpt(.input))]
    Tag { input: String, source: TagError },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    pub name: PackageName,
    pub version: Version,
    pub build: Option<String>,
    pub python: String,
    pub abi: String,
    pub platform: String,
    pub tags: Vec<TagTriple>,
    original: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdistExtension {
    TarGz,
    Zip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistFilename {
    pub name: PackageName,
    pub version: Version,
    pub extension: SdistExtension,
    original: String,
}

/// Any file an index may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistFilename {
    Wheel(WheelFilename),
    Sdist(SdistFilename),
}

impl DistFilename {
    pub fn name(&self) -> &PackageName {
        match self {
            Self::Wheel(wheel) => &wheel.name,
            Self::Sdist(sdist) => &sdist.name,
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            Self::Wheel(wheel) => &wheel.version,
            Self::Sdist(sdist) => &sdist.version,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Wheel(wheel) => &wheel.original,
            Self::Sdist(sdist) => &sdist.original,
        }
    }
}

fn check_characters(input: &str) -> Result<(), FilenameError> {
    let unsafe_char = |c: char| !c.is_ascii() || c.is_ascii_control() || matches!(c, '/' | '\\');
    if input.chars().any(unsafe_char) || input.starts_with('.') {
        return Err(FilenameError::UnsafeCharacters {
            input: input.to_string(),
        });
    }
    Ok(())
}

fn parse_name(input: &str, name: &str) -> Result<PackageName, FilenameError> {
    parse_package_name(name).map_err(|_| FilenameError::Name {
        input: input.into(),
        name: name.into(),
    })
}

fn parse_version(input: &str, version: &str) -> Result<Version, FilenameError> {
    version.parse().map_err(|_| FilenameError::Version {
        input: input.into(),
        version: version.into(),
    })
}

impl FromStr for WheelFilename {
    type Err = FilenameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_characters(input)?;
        let shape = || FilenameError::WheelShape {
            input: input.to_string(),
        };
        let stem = input.strip_suffix(".whl").ok_or_else(shape)?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, python, abi, platform) = match parts.as_slice() {
            [name, version, python, abi, platform] => {
                (*name, *version, None, *python, *abi, *platform)
            }
            [name, version, build, python, abi, platform] => {
                (*name, *version, Some(*build), *python, *abi, *platform)
            }
            _ => return Err(shape()),
        };
        if let Some(build) = build.filter(|build| !build.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(FilenameError::BuildTag {
                input: input.into(),
                build: build.into(),
            });
        }
        let tags =
            TagTriple::expand(python, abi, platform).map_err(|source| FilenameError::Tag {
                input: input.into(),
                source,
            })?;
        Ok(Self {
            name: parse_name(input, name)?,
            version: parse_version(input, version)?,
            build: build.map(str::to_string),
            python: python.to_string(),
            abi: abi.to_string(),
            platform: platform.to_string(),
            tags,
            original: input.to_string(),
        })
    }
}

impl FromStr for SdistFilename {
    type Err = FilenameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_characters(input)?;
        let shape = || FilenameError::SdistShape {
            input: input.to_string(),
        };
        let (stem, extension) = if let Some(stem) = input.strip_suffix(".tar.gz") {
            (stem, SdistExtension::TarGz)
        } else if let Some(stem) = input.strip_suffix(".zip") {
            (stem, SdistExtension::Zip)
        } else {
            return Err(shape());
        };
        // Versions never contain `-`, so the last one separates name from version.
        let (name, version) = stem.rsplit_once('-').ok_or_else(shape)?;
        Ok(Self {
            name: parse_name(input, name)?,
            version: parse_version(input, version)?,
            extension,
            original: input.to_string(),
        })
    }
}

impl FromStr for DistFilename {
    type Err = FilenameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.ends_with(".whl") {
            input.parse().map(Self::Wheel)
        } else if input.ends_with(".tar.gz") || input.ends_with(".zip") {
            input.parse().map(Self::Sdist)
        } else {
            check_characters(input)?;
            Err(FilenameError::UnknownExtension {
                input: input.to_string(),
            })
        }
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Display for SdistFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Display for DistFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::PlatformTag;

    #[test]
    fn parses_musllinux_wheels() {
        let wheel: WheelFilename = "psycopg2-2.9.10-cp313-cp313-musllinux_1_2_x86_64.whl"
            .parse()
            .unwrap();
        assert_eq!(wheel.name.as_ref(), "psycopg2");
        assert_eq!(wheel.version.to_string(), "2.9.10");
        assert_eq!(wheel.tags.len(), 1);
        assert!(wheel.tags[0].platform.is_musllinux());
    }

    #[test]
    fn parses_build_tags_and_compressed_sets() {
        let wheel: WheelFilename = "Foo_Bar-1.0-1local-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(wheel.name.as_ref(), "foo-bar");
        assert_eq!(wheel.build.as_deref(), Some("1local"));
        assert_eq!(wheel.tags.len(), 2);
        assert_eq!(wheel.tags[0].platform, PlatformTag::Any);
    }

    #[test]
    fn parses_sdists() {
        let sdist: SdistFilename = "zope.interface-6.0.tar.gz".parse().unwrap();
        assert_eq!(sdist.name.as_ref(), "zope-interface");
        assert_eq!(sdist.extension, SdistExtension::TarGz);
        let legacy: DistFilename = "foo-1.0.zip".parse().unwrap();
        assert!(matches!(legacy, DistFilename::Sdist(_)));
    }

    #[test]
    fn rejects_hostile_and_malformed_names() {
        let cases = [
            ("../evil-1.0-py3-none-any.whl", "contains `/`"),
            ("a/b-1.0.tar.gz", "contains `/`"),
            ("..\\evil-1.0.tar.gz", "contains `/`"),
            ("evil-1.0-py3-none-any.whl\0.txt", "contains `/`"),
            ("naïve-1.0.tar.gz", "non-ASCII"),
            (".hidden-1.0.tar.gz", "contains `/`"),
            ("foo-1.0.exe", "must end in"),
            ("foo-1.0-py3-none.whl", "not a wheel filename"),
            ("foo-1.0-x-y-py3-none-any.whl", "not a wheel filename"),
            ("foo-notaversion-py3-none-any.whl", "not a PEP 440 version"),
            ("foo-1.0-abc-py3-none-any.whl", "build tag"),
            ("-1.0.tar.gz", "not a valid project name"),
            ("foo.tar.gz", "not an sdist filename"),
            ("foo-1.0-py3-none-any$.whl", "is not a tag"),
        ];
        for (input, expected) in cases {
            let error = input.parse::<DistFilename>().unwrap_err().to_string();
            assert!(error.contains(expected), "{input:?}: {error}");
        }
    }
}
