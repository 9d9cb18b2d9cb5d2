//! Links inside an archive, resolved as the kernel resolves them once the archive is
//! unpacked, so that no chain of links reaches outside the directory it unpacks into.
//!
//! The rules: a symbolic link's target is relative and, followed through every link of the
//! archive, stays under the root (an sdist's top directory, a wheel's root); a hard link
//! names an archive path that, followed through the links before it, stays under the root
//! and is not itself a symbolic link; no entry is written through or over a link. Symbolic
//! links are resolved once the whole archive is known, because a later link can change what
//! an earlier target means (`a -> x/..` then `x -> .`).

use std::cell::Cell;
use std::collections::HashMap;

use super::archive::ArchiveError;

/// Links one resolution may follow; Linux gives up after 40 as well.
const MAX_LINK_HOPS: usize = 40;
/// Path components all resolutions in one archive may step through together.
const MAX_RESOLUTION_STEPS: usize = 100_000;

pub struct Links {
    /// Components every resolved path must start with.
    root: Vec<String>,
    /// Symbolic link path (normalized components joined by `/`) → target as written.
    symlinks: HashMap<String, String>,
    /// Resolution steps taken so far, against `MAX_RESOLUTION_STEPS`.
    steps: Cell<usize>,
}

enum Walk {
    Escapes,
    TooDeep,
}

/// Components of an archive path or link target with `.` and empty ones dropped (`..` kept).
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/')
        .filter(|component| !component.is_empty() && *component != ".")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

impl Links {
    /// `root` is the directory links must stay under, `""` for the archive's root itself.
    pub fn new(root: &str) -> Self {
        Self {
            root: components(root).map(str::to_string).collect(),
            symlinks: HashMap::new(),
            steps: Cell::new(0),
        }
    }

    /// An entry about to be written at `path` (any kind) must not be a link seen earlier,
    /// nor lie under one.
    pub fn check_entry(&self, path: &str) -> Result<(), ArchiveError> {
        if self.symlinks.is_empty() {
            return Ok(());
        }
        let mut key = String::with_capacity(path.len());
        for component in components(path) {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(component);
            if self.symlinks.contains_key(&key) {
                return Err(ArchiveError::WrittenThroughLink {
                    path: path.to_string(),
                    link: key,
                });
            }
        }
        Ok(())
    }

    /// Records the symbolic link at `path`; its target is resolved by [`Self::finish`].
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), ArchiveError> {
        self.check_entry(path)?;
        if target.is_empty() || target.starts_with('/') || target.contains('\0') {
            return Err(ArchiveError::UnsafeLink {
                path: path.to_string(),
                target: target.to_string(),
            });
        }
        let key = components(path).collect::<Vec<_>>().join("/");
        self.symlinks.insert(key, target.to_string());
        Ok(())
    }

    /// A hard link at `path` to the archive path `target`, checked against the links so far
    /// (a hard link is made once, when it is unpacked).
    pub fn check_hard_link(&self, path: &str, target: &str) -> Result<(), ArchiveError> {
        self.check_entry(path)?;
        let unsafe_link = || ArchiveError::UnsafeLink {
            path: path.to_string(),
            target: target.to_string(),
        };
        let resolved = match self.resolve(components(target), false) {
            Ok(resolved) => resolved,
            Err(Walk::Escapes) => return Err(unsafe_link()),
            Err(Walk::TooDeep) => return Err(too_deep(path)),
        };
        if resolved.is_empty() {
            return Err(unsafe_link());
        }
        if self.symlinks.contains_key(&resolved) {
            return Err(ArchiveError::HardLinkToSymlink {
                path: path.to_string(),
                target: target.to_string(),
            });
        }
        Ok(())
    }

    /// Resolves every symbolic link through all the others.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let mut paths: Vec<&String> = self.symlinks.keys().collect();
        paths.sort_unstable();
        for path in paths {
            let target = &self.symlinks[path];
            let walk = components(parent(path)).chain(components(target));
            match self.resolve(walk, true) {
                Ok(_) => {}
                Err(Walk::Escapes) => {
                    return Err(ArchiveError::UnsafeLink {
                        path: path.clone(),
                        target: target.clone(),
                    });
                }
                Err(Walk::TooDeep) => return Err(too_deep(path)),
            }
        }
        Ok(())
    }

    /// Walks `path` from the archive root, replacing each symbolic link met by its target
    /// (the last component only when `follow_last`), and returns the path reached. A `..`
    /// that would leave the root, or an end outside it, is an escape.
    fn resolve<'a>(
        &'a self,
        path: impl Iterator<Item = &'a str>,
        follow_last: bool,
    ) -> Result<String, Walk> {
        let mut pending: Vec<&str> = path.collect();
        pending.reverse();
        let mut resolved: Vec<&str> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            self.steps.set(self.steps.get() + 1);
            if self.steps.get() > MAX_RESOLUTION_STEPS {
                return Err(Walk::TooDeep);
            }
            if component == ".." {
                if resolved.len() <= self.root.len() {
                    return Err(Walk::Escapes);
                }
                resolved.pop();
                continue;
            }
            resolved.push(component);
            if !follow_last && pending.is_empty() {
                break;
            }
            let Some(target) = self.symlinks.get(&resolved.join("/")) else {
                continue;
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(Walk::TooDeep);
            }
            resolved.pop();
            pending.extend(components(target).rev());
        }
        let inside = resolved.len() >= self.root.len()
            && resolved.iter().zip(&self.root).all(|(a, b)| a == b);
        if !inside {
            return Err(Walk::Escapes);
        }
        Ok(resolved.join("/"))
    }
}

fn too_deep(path: &str) -> ArchiveError {
    ArchiveError::LinksTooDeep {
        path: path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdist_links(symlinks: &[(&str, &str)]) -> Result<(), ArchiveError> {
        let mut links = Links::new("pkg-1.0");
        for (path, target) in symlinks {
            links.add_symlink(path, target)?;
        }
        links.finish()
    }

    #[test]
    fn links_inside_the_top_directory_are_kept() {
        assert!(sdist_links(&[("pkg-1.0/a/link", "../b")]).is_ok());
        assert!(sdist_links(&[("pkg-1.0/docs/README", "../README")]).is_ok());
        assert!(sdist_links(&[("pkg-1.0/self", ".")]).is_ok());
        assert!(sdist_links(&[("pkg-1.0/a", "b/c"), ("pkg-1.0/b", "d")]).is_ok());
    }

    #[test]
    fn links_leaving_the_top_directory_are_refused() {
        assert!(sdist_links(&[("pkg-1.0/link", "../../etc/passwd")]).is_err());
        assert!(sdist_links(&[("pkg-1.0/link", "/etc/passwd")]).is_err());
        assert!(sdist_links(&[("pkg-1.0/link", "..")]).is_err());
        assert!(sdist_links(&[("pkg-1.0/link", "../pkg-1.0/x")]).is_err());
        assert!(sdist_links(&[("pkg-1.0", "elsewhere")]).is_err());
    }

    #[test]
    fn chained_links_are_resolved_through_each_other() {
        assert!(sdist_links(&[("pkg-1.0/a", "."), ("pkg-1.0/c", "a/b")]).is_ok());
        // Each looks harmless alone; through `x`, `d/y` is `pkg-1.0/..`.
        let chain = [("pkg-1.0/x", "."), ("pkg-1.0/d/y", "../x/..")];
        assert!(matches!(
            sdist_links(&chain),
            Err(ArchiveError::UnsafeLink { .. })
        ));
        // A later link changes what an earlier target means.
        let later = [("pkg-1.0/e", "x/.."), ("pkg-1.0/x", ".")];
        assert!(matches!(
            sdist_links(&later),
            Err(ArchiveError::UnsafeLink { .. })
        ));
    }

    #[test]
    fn loops_are_refused() {
        let cycle = [("pkg-1.0/a", "b"), ("pkg-1.0/b", "a")];
        assert!(matches!(
            sdist_links(&cycle),
            Err(ArchiveError::LinksTooDeep { .. })
        ));
    }

    #[test]
    fn entries_under_or_over_a_link_are_refused() {
        let mut links = Links::new("pkg-1.0");
        links.add_symlink("pkg-1.0/up", "sub").unwrap();
        assert!(links.check_entry("pkg-1.0/other/file").is_ok());
        assert!(links.check_entry("pkg-1.0/up/file").is_err());
        assert!(links.check_entry("pkg-1.0/./up//file").is_err());
        assert!(links.check_entry("pkg-1.0/up").is_err());
    }

    #[test]
    fn hard_links_stay_inside_and_never_name_a_symlink() {
        let mut links = Links::new("pkg-1.0");
        links.add_symlink("pkg-1.0/a/s", "../x").unwrap();
        assert!(links.check_hard_link("pkg-1.0/h", "pkg-1.0/x").is_ok());
        assert!(matches!(
            links.check_hard_link("pkg-1.0/h2", "pkg-1.0/a/s"),
            Err(ArchiveError::HardLinkToSymlink { .. })
        ));
        assert!(links.check_hard_link("pkg-1.0/h3", "other/x").is_err());
        links.add_symlink("pkg-1.0/dir", ".").unwrap();
        assert!(links.check_hard_link("pkg-1.0/h4", "pkg-1.0/dir/x").is_ok());
        assert!(links.check_hard_link("pkg-1.0/h5", "pkg-1.0/../x").is_err());
    }

    #[test]
    fn a_wheel_root_is_the_archive_root() {
        let mut links = Links::new("");
        links.add_symlink("pkg/data", "../pkg-1.0.data/x").unwrap();
        assert!(links.finish().is_ok());
        let mut links = Links::new("");
        links.add_symlink("pkg/escape", "../../etc").unwrap();
        assert!(links.finish().is_err());
    }
}
