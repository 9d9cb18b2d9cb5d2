//! Reading a file out of an image or a root filesystem without running anything in it:
//! symlinks are resolved inside the image, never against the host.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before a path counts as a loop (Linux's own limit).
pub const MAX_SYMLINKS: usize = 40;

/// The bytes of `path` in the root directory `rootfs`, as a process chrooted there would
/// read them: absolute links restart from `rootfs`, `..` stops at it. `None` when there is
/// no such file (or it is not a regular file).
pub fn read_in_root(rootfs: &Path, path: &str) -> std::io::Result<Option<Vec<u8>>> {
    let Some(resolved) = resolve_in_root(rootfs, path)? else {
        return Ok(None);
    };
    let host = rootfs.join(&resolved);
    if !host.is_file() {
        return Ok(None);
    }
    std::fs::read(host).map(Some)
}

/// `path` with every symlink resolved, relative to `rootfs`; `None` if a component is absent.
fn resolve_in_root(rootfs: &Path, path: &str) -> std::io::Result<Option<PathBuf>> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = components(Path::new(path));
    pending.reverse();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component == ".." {
            resolved.pop();
            continue;
        }
        resolved.push(component);
        let host: PathBuf = std::iter::once(rootfs.as_os_str())
            .chain(resolved.iter().map(OsString::as_os_str))
            .collect();
        let metadata = match host.symlink_metadata() {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        if !metadata.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(std::io::Error::other(format!(
                "{path}: more than {MAX_SYMLINKS} symlinks"
            )));
        }
        let target = std::fs::read_link(&host)?;
        resolved.pop();
        if target.is_absolute() {
            resolved.clear();
        }
        pending.extend(components(&target).into_iter().rev());
    }
    Ok(Some(resolved.iter().collect()))
}

/// Normal components and `..`; the root and `.` say nothing once resolution is relative.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// What `docker cp <container>:<path> -` wrote: the file, or where its symlink points.
#[derive(Debug, PartialEq, Eq)]
pub enum CopiedEntry {
    File(Vec<u8>),
    Symlink(String),
}

/// The single entry of the tar stream `cp` writes for one path.
pub fn copied_entry(tar_stream: &[u8]) -> std::io::Result<CopiedEntry> {
    let mut archive = tar::Archive::new(tar_stream);
    let mut entry = archive
        .entries()?
        .next()
        .ok_or_else(|| std::io::Error::other("the copied tar stream is empty"))??;
    let kind = entry.header().entry_type();
    if kind.is_symlink() {
        let target = entry
            .link_name()?
            .ok_or_else(|| std::io::Error::other("a symlink without a target"))?;
        return Ok(CopiedEntry::Symlink(target.to_string_lossy().into_owned()));
    }
    if !kind.is_file() {
        return Err(std::io::Error::other(format!(
            "the copied path is a {kind:?}, not a file"
        )));
    }
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes)?;
    Ok(CopiedEntry::File(bytes))
}

/// Where the symlink at `link` pointing to `target` leads, as an absolute path.
pub fn symlink_destination(link: &str, target: &str) -> String {
    let base = if target.starts_with('/') {
        PathBuf::from("/")
    } else {
        Path::new(link)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    };
    let mut parts: Vec<OsString> = components(&base);
    for component in components(Path::new(target)) {
        if component == ".." {
            parts.pop();
        } else {
            parts.push(component);
        }
    }
    let joined: PathBuf = parts.iter().collect();
    format!("/{}", joined.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root_never_on_the_host() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(root.path().join("usr")).unwrap();
        std::fs::write(lib.join("ld-musl-x86_64.so.1"), b"musl").unwrap();
        symlink("ld-musl-x86_64.so.1", lib.join("libc.musl-x86_64.so.1")).unwrap();
        symlink("/lib", root.path().join("usr/lib")).unwrap();
        symlink("../../../../../etc/hostname", lib.join("escape")).unwrap();
        symlink("loop", lib.join("loop")).unwrap();

        let read = |path| read_in_root(root.path(), path).unwrap();
        assert_eq!(read("/lib/libc.musl-x86_64.so.1"), Some(b"musl".to_vec()));
        assert_eq!(
            read("/usr/lib/libc.musl-x86_64.so.1"),
            Some(b"musl".to_vec())
        );
        assert_eq!(read("/lib/escape"), None, "`..` stops at the root");
        assert_eq!(read("/lib/absent.so"), None);
        assert_eq!(read("/lib"), None, "a directory is not a file");
        assert!(read_in_root(root.path(), "/lib/loop").is_err());
    }

    #[test]
    fn a_symlink_destination_is_absolute_and_normalized() {
        assert_eq!(
            symlink_destination("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
            "/lib/ld-musl-x86_64.so.1"
        );
        assert_eq!(
            symlink_destination("/usr/lib/libc.so", "../../lib/ld-musl-x86_64.so.1"),
            "/lib/ld-musl-x86_64.so.1"
        );
        assert_eq!(symlink_destination("/a/b", "/c/./d"), "/c/d");
    }

    #[test]
    fn a_copied_tar_stream_gives_its_file_or_its_link() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "libc.so", &b"musl"[..])
            .unwrap();
        let file = builder.into_inner().unwrap();
        assert_eq!(
            copied_entry(&file).unwrap(),
            CopiedEntry::File(b"musl".to_vec())
        );

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Symlink);
        builder
            .append_link(&mut header, "libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
            .unwrap();
        let link = builder.into_inner().unwrap();
        assert_eq!(
            copied_entry(&link).unwrap(),
            CopiedEntry::Symlink("ld-musl-x86_64.so.1".into())
        );
    }
}
