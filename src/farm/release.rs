//! Which release of a project to build when resolution (prewarm's, or a build's own
//! requirements) needs a wheel that nobody has: the newest final, non-yanked release with an sdist that every known specifier allows and
//! whose `Requires-Python` admits the target, and that was not tried already.

use std::collections::BTreeSet;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;

use crate::pypi::simple::ProjectDetail;
use crate::pypi::{DistFilename, Target, Version};

pub fn release_to_build(
    detail: &ProjectDetail,
    specifiers: &[VersionSpecifiers],
    target: &Target,
    tried: &BTreeSet<Version>,
) -> Option<Version> {
    let python = Version::from_str(&format!("{}.{}", target.major, target.minor)).ok()?;
    detail
        .files
        .iter()
        .filter(|file| !file.yanked.is_yanked())
        .filter(|file| {
            file.requires_python.as_deref().is_none_or(|text| {
                VersionSpecifiers::from_str(text).is_ok_and(|allowed| allowed.contains(&python))
            })
        })
        .filter_map(|file| match file.filename.parse::<DistFilename>() {
            Ok(DistFilename::Sdist(sdist)) => Some(sdist.version),
            _ => None,
        })
        .filter(|version| !version.any_prerelease() && !tried.contains(version))
        .filter(|version| specifiers.iter().all(|allowed| allowed.contains(version)))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{FileDetail, Yanked};

    fn file(filename: &str, requires_python: Option<&str>, yanked: bool) -> FileDetail {
        let mut file = FileDetail::new(filename, format!("/files/{filename}"));
        file.requires_python = requires_python.map(str::to_string);
        file.yanked = Yanked::from_reason(yanked.then_some(""));
        file
    }

    fn page(files: Vec<FileDetail>) -> ProjectDetail {
        ProjectDetail {
            meta: Default::default(),
            name: "thing".into(),
            versions: Vec::new(),
            files,
        }
    }

    #[test]
    fn picks_the_newest_sdist_that_fits() {
        let detail = page(vec![
            file("thing-1.0.tar.gz", None, false),
            file("thing-2.0.tar.gz", None, false),
            file("thing-2.1.tar.gz", Some("<3.13"), false),
            file("thing-2.2.tar.gz", None, true),
            file("thing-3.0rc1.tar.gz", None, false),
            file("thing-3.0-py3-none-any.whl", None, false),
        ]);
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let none = BTreeSet::new();
        let version = |text: &str| Version::from_str(text).unwrap();
        assert_eq!(
            release_to_build(&detail, &[], &target, &none),
            Some(version("2.0"))
        );
        let below_two = VersionSpecifiers::from_str("<2").unwrap();
        assert_eq!(
            release_to_build(&detail, &[below_two], &target, &none),
            Some(version("1.0"))
        );
        let tried = BTreeSet::from([version("2.0"), version("1.0")]);
        assert_eq!(release_to_build(&detail, &[], &target, &tried), None);
    }
}
