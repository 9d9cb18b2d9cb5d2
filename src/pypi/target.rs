//! A build target: a CPython version and a platform, e.g. `cp313-musllinux_1_2_x86_64`,
//! and which wheels install there (the tag order pip uses for CPython, PEP 425/656).

use std::fmt;
use std::str::FromStr;

use super::excerpt::excerpt;
use super::filename::WheelFilename;
use super::tags::{PlatformTag, TagTriple};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub major: u8,
    pub minor: u8,
    pub platform: PlatformTag,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{}` is not a target: expected `cp<major><minor>-<platform>`, e.g. `cp313-musllinux_1_2_x86_64`",
    excerpt(.input)
)]
pub struct TargetError {
    input: String,
}

impl Target {
    pub fn interpreter_tag(&self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }

    /// Whether one tag triple installs on this CPython and platform: the interpreter's own
    /// ABI, `abi3` from any earlier 3.x, or pure `none` wheels for py3/py3x/cp3x.
    pub fn accepts_tag(&self, tag: &TagTriple) -> bool {
        if !tag.platform.runs_on(&self.platform) {
            return false;
        }
        let own = self.interpreter_tag();
        let minor_of = |prefix: &str| {
            tag.python
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(&self.major.to_string()))
                .map(|rest| rest.parse::<u8>().ok())
        };
        match tag.abi.as_str() {
            abi if abi == own => tag.python == own,
            "abi3" => matches!(minor_of("cp"), Some(Some(minor)) if minor <= self.minor),
            "none" => match (minor_of("cp"), minor_of("py")) {
                (Some(Some(minor)), _) => minor <= self.minor,
                (_, Some(None)) => tag.python == format!("py{}", self.major),
                (_, Some(Some(minor))) => minor <= self.minor,
                _ => false,
            },
            _ => false,
        }
    }

    pub fn accepts(&self, wheel: &WheelFilename) -> bool {
        wheel.tags.iter().any(|tag| self.accepts_tag(tag))
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || TargetError {
            input: input.to_string(),
        };
        let (python, platform) = input.split_once('-').ok_or_else(error)?;
        let digits = python
            .strip_prefix("cp")
            .filter(|digits| digits.len() >= 2)
            .ok_or_else(error)?;
        let major = digits[..1].parse().map_err(|_| error())?;
        let minor = digits[1..].parse().map_err(|_| error())?;
        let platform: PlatformTag = platform.parse().map_err(|_| error())?;
        if matches!(platform, PlatformTag::Any | PlatformTag::Other(_)) {
            return Err(error());
        }
        Ok(Self {
            major,
            minor,
            platform,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.interpreter_tag(), self.platform)
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_held_as_its_text_and_parsed_back() {
        let json = serde_json::to_string(&target()).unwrap();
        assert_eq!(json, "\"cp313-musllinux_1_2_x86_64\"");
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), target());
        let error = serde_json::from_str::<Target>("\"cp313-../etc\"").unwrap_err();
        assert!(error.to_string().contains("cp313-../etc"), "{error}");
    }

    fn target() -> Target {
        "cp313-musllinux_1_2_x86_64".parse().unwrap()
    }

    fn accepts(filename: &str) -> bool {
        target().accepts(&filename.parse().unwrap())
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(target().to_string(), "cp313-musllinux_1_2_x86_64");
        assert_eq!(target().interpreter_tag(), "cp313");
        for bad in [
            "cp313",
            "py3-musllinux_1_2_x86_64",
            "cp313-any",
            "cpx13-musllinux_1_2_x86_64",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_what_pip_would_install_on_alpine_with_python_3_13() {
        assert!(accepts("a-1-cp313-cp313-musllinux_1_2_x86_64.whl"));
        assert!(accepts("a-1-cp313-cp313-musllinux_1_1_x86_64.whl"));
        assert!(accepts("a-1-cp39-abi3-musllinux_1_2_x86_64.whl"));
        assert!(accepts("a-1-py3-none-any.whl"));
        assert!(accepts("a-1-py2.py3-none-any.whl"));
        assert!(accepts("a-1-cp313-none-any.whl"));
        assert!(!accepts("a-1-cp312-cp312-musllinux_1_2_x86_64.whl"));
        assert!(!accepts("a-1-cp313-cp313-manylinux_2_17_x86_64.whl"));
        assert!(!accepts("a-1-cp313-cp313-musllinux_1_2_aarch64.whl"));
        assert!(!accepts("a-1-cp314-abi3-musllinux_1_2_x86_64.whl"));
        assert!(!accepts("a-1-py2-none-any.whl"));
    }
}
