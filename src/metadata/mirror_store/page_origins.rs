//! The origins of one mirrored page's files as one binary record: for each file with a
//! sha256, the URL it is fetched from and the digest of its upstream metadata file. Written
//! once when the upstream page is stored, read when `/files/<digest>/<filename>` asks for
//! one of them. One record per page, not one per file: a 40,000-file page was 40,000 sled
//! inserts, and sled held 180 MB after them.
//!
//! Layout (integers little-endian), format `ORIGINS_FORMAT`:
//! `magic "EWO" + format byte`, `upstream: u32 length + UTF-8`, `count: u32`, then per
//! file `sha256: 32 bytes`, `metadata: 0, or 1 + 32 bytes`, `filename: u16 length + UTF-8`,
//! `url: u32 length + UTF-8`. A lookup walks the entries and decodes only the one it finds.

use crate::pypi::Sha256Digest;
use crate::pypi::simple::FileDetail;

use super::UpstreamFile;

const MAGIC: &[u8; 3] = b"EWO";
/// Bumped when the layout changes; a record of another format is refused, not misread.
pub const ORIGINS_FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginsError {
    #[error("the record is not a page-origins record")]
    NotOrigins,
    #[error(
        "the record is in origins format {found}; this edelweiss reads format {ORIGINS_FORMAT}"
    )]
    Format { found: u8 },
    #[error("the record ends inside its {field}")]
    Truncated { field: &'static str },
    #[error("the record's {field} is not UTF-8")]
    NotUtf8 { field: &'static str },
}

/// The record for `files` of a page fetched from `upstream`. Files without a sha256 are
/// left out (they keep their upstream URL and are never fetched here), and so are file
/// names or URLs too long for the layout, which no vetted page holds.
pub fn encode(upstream: &str, files: &[FileDetail]) -> Vec<u8> {
    let mut entries: Vec<u8> = Vec::with_capacity(files.len() * 200);
    let mut count: u32 = 0;
    for file in files {
        let Some(digest) = file
            .sha256()
            .and_then(|hex| hex.parse::<Sha256Digest>().ok())
        else {
            continue;
        };
        let (Ok(filename_length), Ok(url_length)) = (
            u16::try_from(file.filename.len()),
            u32::try_from(file.url.len()),
        ) else {
            continue;
        };
        let metadata = file
            .core_metadata
            .sha256_hex()
            .and_then(|hex| hex.parse::<Sha256Digest>().ok());
        entries.extend_from_slice(digest.as_bytes());
        match metadata {
            Some(metadata) => {
                entries.push(1);
                entries.extend_from_slice(metadata.as_bytes());
            }
            None => entries.push(0),
        }
        entries.extend_from_slice(&filename_length.to_le_bytes());
        entries.extend_from_slice(file.filename.as_bytes());
        entries.extend_from_slice(&url_length.to_le_bytes());
        entries.extend_from_slice(file.url.as_bytes());
        count += 1;
    }
    let upstream = &upstream.as_bytes()[..upstream.len().min(u32::MAX as usize)];
    let mut record = Vec::with_capacity(entries.len() + upstream.len() + 12);
    record.extend_from_slice(MAGIC);
    record.push(ORIGINS_FORMAT);
    record.extend_from_slice(&(upstream.len() as u32).to_le_bytes());
    record.extend_from_slice(upstream);
    record.extend_from_slice(&count.to_le_bytes());
    record.extend_from_slice(&entries);
    record
}

/// The origin of the file `filename` with `digest` in `record`, if the page lists it.
pub fn find(
    record: &[u8],
    digest: Sha256Digest,
    filename: &str,
) -> Result<Option<UpstreamFile>, OriginsError> {
    let mut reader = Reader { rest: record };
    let magic = reader.take(4, "header")?;
    if &magic[..3] != MAGIC {
        return Err(OriginsError::NotOrigins);
    }
    if magic[3] != ORIGINS_FORMAT {
        return Err(OriginsError::Format { found: magic[3] });
    }
    let upstream_length = reader.u32("upstream")?;
    let upstream = reader.text(upstream_length, "upstream")?;
    let count = reader.u32("count")?;
    for _ in 0..count {
        let file_digest = reader.take(32, "sha256")?;
        let metadata = match reader.take(1, "metadata")?[0] {
            0 => None,
            _ => Some(reader.take(32, "metadata")?),
        };
        let filename_length = u16::from_le_bytes(reader.array("filename")?);
        let file_name = reader.take(filename_length as usize, "filename")?;
        let url_length = reader.u32("url")?;
        let url = reader.take(url_length, "url")?;
        if file_digest != digest.as_bytes() || file_name != filename.as_bytes() {
            continue;
        }
        return Ok(Some(UpstreamFile {
            upstream: upstream.to_string(),
            url: std::str::from_utf8(url)
                .map_err(|_| OriginsError::NotUtf8 { field: "url" })?
                .to_string(),
            metadata_sha256: metadata.map(|bytes| {
                // `take(32)` returned exactly 32 bytes.
                Sha256Digest::from_bytes(bytes.try_into().expect("32 bytes"))
            }),
        }));
    }
    Ok(None)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize, field: &'static str) -> Result<&'a [u8], OriginsError> {
        if self.rest.len() < length {
            return Err(OriginsError::Truncated { field });
        }
        let (taken, rest) = self.rest.split_at(length);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], OriginsError> {
        // `take(N)` returned exactly N bytes.
        Ok(self.take(N, field)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, field: &'static str) -> Result<usize, OriginsError> {
        Ok(u32::from_le_bytes(self.array(field)?) as usize)
    }

    fn text(&mut self, length: usize, field: &'static str) -> Result<&'a str, OriginsError> {
        std::str::from_utf8(self.take(length, field)?).map_err(|_| OriginsError::NotUtf8 { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::CoreMetadataRef;

    fn file(filename: &str, metadata: Option<Sha256Digest>) -> FileDetail {
        let mut file = FileDetail::new(
            filename,
            format!("https://files.example/packages/{filename}"),
        );
        let digest = Sha256Digest::of(filename.as_bytes()).to_hex();
        file.hashes.insert("sha256", digest);
        file.core_metadata = match metadata {
            Some(digest) => CoreMetadataRef::sha256(digest.to_hex()),
            None => CoreMetadataRef::Absent(false),
        };
        file
    }

    #[test]
    fn finds_each_file_by_digest_and_name() {
        let metadata = Sha256Digest::of(b"METADATA");
        let files = [
            file("demo-1.0-py3-none-any.whl", Some(metadata)),
            file("demo-1.0.tar.gz", None),
        ];
        let record = encode("https://pypi.example/simple/", &files);
        let wheel = Sha256Digest::of(b"demo-1.0-py3-none-any.whl");
        assert_eq!(
            find(&record, wheel, "demo-1.0-py3-none-any.whl").unwrap(),
            Some(UpstreamFile {
                upstream: "https://pypi.example/simple/".into(),
                url: "https://files.example/packages/demo-1.0-py3-none-any.whl".into(),
                metadata_sha256: Some(metadata),
            })
        );
        let sdist = Sha256Digest::of(b"demo-1.0.tar.gz");
        let found = find(&record, sdist, "demo-1.0.tar.gz").unwrap().unwrap();
        assert_eq!(found.metadata_sha256, None);
        assert_eq!(find(&record, wheel, "demo-1.0.tar.gz").unwrap(), None);
        assert_eq!(
            find(&record, sdist, "demo-1.0-py3-none-any.whl").unwrap(),
            None
        );
    }

    #[test]
    fn leaves_out_files_without_a_sha256() {
        let mut unverifiable = file("demo-1.0.tar.gz", None);
        unverifiable.hashes.clear();
        let record = encode("https://pypi.example/simple/", &[unverifiable]);
        assert_eq!(&record[record.len() - 4..], &0u32.to_le_bytes());
    }

    #[test]
    fn refuses_other_records_with_a_typed_error() {
        let record = encode("https://pypi.example/simple/", &[file("a-1.whl", None)]);
        let digest = Sha256Digest::of(b"a-1.whl");
        assert_eq!(
            find(b"{\"upstream\":1}", digest, "a-1.whl"),
            Err(OriginsError::NotOrigins)
        );
        let mut newer = record.clone();
        newer[3] = ORIGINS_FORMAT + 1;
        assert_eq!(
            find(&newer, digest, "a-1.whl"),
            Err(OriginsError::Format {
                found: ORIGINS_FORMAT + 1
            })
        );
        assert!(matches!(
            find(&record[..record.len() - 3], digest, "a-1.whl"),
            Err(OriginsError::Truncated { field: "url" })
        ));
    }
}
