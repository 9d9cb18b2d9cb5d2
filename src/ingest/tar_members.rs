//! The members of a tar stream as an unpacking reader (Python's `tarfile`, GNU tar) sees
//! them, read with every header bounded before anything is allocated.
//!
//! The `tar` crate reads GNU long names and PAX records whole into memory, whatever size
//! their header announces, so headers are read raw here and those records are read only
//! when small. The size a member is charged is the one a reader uses: PAX `size` overrides
//! the header. Where readers would disagree on where a member ends (a PAX size unlike the
//! header's, data behind a directory or link, GNU sparse maps, a global header that renames
//! or resizes later members), the archive is refused rather than guessed at.

use std::borrow::Cow;
use std::io::Read;

use super::archive::{ArchiveError, Budget};

/// The longest GNU long name or long link name read (Linux's `PATH_MAX`).
pub const MAX_LONG_NAME_BYTES: u64 = 4 << 10;
/// The largest PAX extended header read, local or global.
pub const MAX_PAX_HEADER_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Directory,
    Symlink,
    HardLink,
    /// Devices and FIFOs: no data, no link.
    Special,
}

/// One member with its GNU and PAX records applied.
pub struct Member<'a, R: Read> {
    /// The path as written (lossily decoded), before any trimming.
    pub path: String,
    pub kind: MemberKind,
    /// The link target of a symbolic or hard link.
    pub link: Option<String>,
    /// Reads the member's data.
    pub data: tar::Entry<'a, R>,
}

/// Records that describe the next member.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

/// The PAX keys that change where a member is or how long it is.
#[derive(Default)]
struct PaxRecords {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
}

pub struct TarMembers<'a, R: Read> {
    entries: tar::Entries<'a, R>,
}

fn unreadable(error: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Unreadable {
        format: "tar.gz",
        reason: error.to_string(),
    }
}

fn ambiguous(path: &[u8], reason: &'static str) -> ArchiveError {
    ArchiveError::Ambiguous {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    }
}

/// Reads an extension record's data, refusing it before reading when the header announces
/// more than `limit` bytes.
fn read_record<R: Read>(
    entry: tar::Entry<'_, R>,
    kind: &'static str,
    limit: u64,
    budget: &mut Budget,
) -> Result<Vec<u8>, ArchiveError> {
    let size = entry.header().entry_size().map_err(unreadable)?;
    if size > limit {
        return Err(ArchiveError::RecordTooLarge { kind, size, limit });
    }
    budget.charge_bytes(size)?;
    // `size` is at most `limit`, a few KiB.
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok(bytes)
}

fn set_once(slot: &mut Option<Vec<u8>>, bytes: Vec<u8>) -> Result<(), &'static str> {
    match slot.replace(bytes) {
        Some(_) => Err("two records of one kind describe the same entry"),
        None => Ok(()),
    }
}

fn parse_pax(bytes: &[u8]) -> Result<PaxRecords, &'static str> {
    let mut records = PaxRecords::default();
    for extension in tar::PaxExtensions::new(bytes) {
        let extension = extension.map_err(|_| "its PAX header is malformed")?;
        let (key, value) = (extension.key_bytes(), extension.value_bytes());
        match key {
            b"path" => set_once(&mut records.path, value.to_vec())?,
            b"linkpath" => set_once(&mut records.linkpath, value.to_vec())?,
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or("its PAX size is not a number")?;
                if records.size.replace(size).is_some() {
                    return Err("it has two PAX sizes");
                }
            }
            _ if key.starts_with(b"GNU.sparse.") => return Err("it is a GNU sparse file"),
            _ => {}
        }
    }
    Ok(records)
}

/// GNU NUL-terminates long names.
fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// By type flag, as `tarfile` reads them: regular, contiguous and unknown types are files.
fn member_kind(type_flag: u8) -> MemberKind {
    match type_flag {
        b'5' => MemberKind::Directory,
        b'2' => MemberKind::Symlink,
        b'1' => MemberKind::HardLink,
        b'3' | b'4' | b'6' => MemberKind::Special,
        _ => MemberKind::File,
    }
}

impl<'a, R: Read> TarMembers<'a, R> {
    pub fn new(archive: &'a mut tar::Archive<R>) -> Result<Self, ArchiveError> {
        let entries = archive.entries().map_err(unreadable)?.raw(true);
        Ok(Self { entries })
    }

    /// The next member, its records applied and its size charged to `budget`.
    pub fn next_member(
        &mut self,
        budget: &mut Budget,
    ) -> Result<Option<Member<'a, R>>, ArchiveError> {
        let mut pending = Pending::default();
        loop {
            let Some(entry) = self.entries.next() else {
                if pending.long_name.is_some()
                    || pending.long_link.is_some()
                    || pending.pax.is_some()
                {
                    return Err(unreadable("records at its end describe no entry"));
                }
                return Ok(None);
            };
            let entry = entry.map_err(unreadable)?;
            let record_path = entry.path_bytes().into_owned();
            let in_record = |reason| ambiguous(&record_path, reason);
            match entry.header().entry_type().as_byte() {
                b'L' => {
                    let name = read_record(entry, "GNU long name", MAX_LONG_NAME_BYTES, budget)?;
                    set_once(&mut pending.long_name, trim_nul(name)).map_err(in_record)?;
                }
                b'K' => {
                    let link =
                        read_record(entry, "GNU long link name", MAX_LONG_NAME_BYTES, budget)?;
                    set_once(&mut pending.long_link, trim_nul(link)).map_err(in_record)?;
                }
                // `X` is Solaris' spelling, which `tarfile` honours too.
                b'x' | b'X' => {
                    let pax = read_record(entry, "PAX header", MAX_PAX_HEADER_BYTES, budget)?;
                    set_once(&mut pending.pax, pax).map_err(in_record)?;
                }
                b'g' => {
                    budget.charge(0)?;
                    let pax =
                        read_record(entry, "PAX global header", MAX_PAX_HEADER_BYTES, budget)?;
                    let records = parse_pax(&pax).map_err(in_record)?;
                    // `tarfile` applies these to every later member; the `tar` crate ignores them.
                    if records.path.is_some()
                        || records.linkpath.is_some()
                        || records.size.is_some()
                    {
                        return Err(in_record(
                            "its global header sets a path, link or size for every later entry",
                        ));
                    }
                }
                b'S' => return Err(in_record("it is a GNU sparse file")),
                _ => return member(entry, pending, budget).map(Some),
            }
        }
    }
}

/// Applies `pending` to `entry`, checks that readers agree on its extent, and charges it.
fn member<'a, R: Read>(
    entry: tar::Entry<'a, R>,
    pending: Pending,
    budget: &mut Budget,
) -> Result<Member<'a, R>, ArchiveError> {
    let header_path = entry.path_bytes().into_owned();
    let pax = match pending.pax.as_deref().map(parse_pax).transpose() {
        Ok(pax) => pax.unwrap_or_default(),
        Err(reason) => return Err(ambiguous(&header_path, reason)),
    };
    let path = match (pending.long_name, pax.path) {
        (Some(_), Some(_)) => {
            return Err(ambiguous(
                &header_path,
                "it has both a GNU long name and a PAX path",
            ));
        }
        (Some(name), None) | (None, Some(name)) => name,
        (None, None) => header_path,
    };
    let path = String::from_utf8_lossy(&path).into_owned();
    let header_size = entry.header().entry_size().map_err(unreadable)?;
    let size = pax.size.unwrap_or(header_size);
    budget.charge(size)?;
    if size != header_size {
        return Err(ambiguous(
            path.as_bytes(),
            "its PAX size differs from its header's, so readers would disagree on where it ends",
        ));
    }
    let kind = member_kind(entry.header().entry_type().as_byte());
    // `tarfile` reads no data behind a directory (also a file named `…/`) or a link, while
    // the `tar` crate skips `size` bytes: the next header would differ.
    let holds_data = kind == MemberKind::File && !path.ends_with('/');
    if !holds_data && size != 0 {
        return Err(ambiguous(
            path.as_bytes(),
            "it is not a regular file but carries data",
        ));
    }
    let link = match kind {
        MemberKind::Symlink | MemberKind::HardLink => {
            let link = pending
                .long_link
                .or(pax.linkpath)
                .or_else(|| entry.link_name_bytes().map(Cow::into_owned))
                .unwrap_or_default();
            Some(String::from_utf8_lossy(&link).into_owned())
        }
        _ => None,
    };
    Ok(Member {
        path,
        kind,
        link,
        data: entry,
    })
}
