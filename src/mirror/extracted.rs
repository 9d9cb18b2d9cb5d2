//! PEP 658 metadata for upstream wheels whose upstream publishes none: the `Ingestor` reads
//! METADATA from each wheel once it is stored here, and the mirror's pages advertise it from
//! then on. A wheel not yet stored cannot be advertised (its metadata's digest is not known
//! before its bytes are); an upstream's own metadata file, when it publishes one, is passed
//! through and takes precedence.

use std::collections::HashMap;

use crate::metadata::{ExtractedMetadata, Extraction};
use crate::pypi::Sha256Digest;
use crate::pypi::simple::{CoreMetadataRef, ProjectDetail};

/// Advertises, on an upstream page, the metadata read from its stored wheels (`extracted`,
/// by filename) where the upstream lists none, for the same bytes only.
pub fn advertise(detail: &mut ProjectDetail, extracted: &HashMap<String, ExtractedMetadata>) {
    if extracted.is_empty() {
        return;
    }
    for file in &mut detail.files {
        if file.core_metadata.sha256_hex().is_some() {
            continue;
        }
        let Some(record) = extracted.get(&file.filename) else {
            continue;
        };
        let listed = file
            .sha256()
            .and_then(|hex| hex.parse::<Sha256Digest>().ok());
        if let (Some(wheel), Some(metadata)) = (listed, metadata_of(record)) {
            if wheel == record.wheel_sha256 {
                file.core_metadata = CoreMetadataRef::sha256(metadata.to_hex());
                file.dist_info_metadata = file.core_metadata.clone();
            }
        }
    }
}

fn metadata_of(record: &ExtractedMetadata) -> Option<Sha256Digest> {
    match &record.outcome {
        Extraction::Stored { metadata_sha256 } => Some(*metadata_sha256),
        Extraction::Refused { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::simple::{FileDetail, Meta};

    fn file(filename: &str, sha: Sha256Digest, metadata: Option<&str>) -> FileDetail {
        let mut file = FileDetail::new(filename, format!("https://files.example/{filename}"));
        file.hashes.insert("sha256", sha.to_hex());
        if let Some(metadata) = metadata {
            file.core_metadata = CoreMetadataRef::sha256(metadata.to_string());
            file.dist_info_metadata = file.core_metadata.clone();
        }
        file
    }

    #[test]
    fn advertises_stored_metadata_only_for_the_same_bytes_and_never_over_the_upstreams() {
        let (wheel, other) = (Sha256Digest::of(b"wheel"), Sha256Digest::of(b"other"));
        let metadata = Sha256Digest::of(b"METADATA");
        let mut detail = ProjectDetail {
            meta: Meta::default(),
            name: "demo".into(),
            versions: vec!["1.0".into()],
            files: vec![
                file("demo-1.0-py3-none-any.whl", wheel, None),
                file("demo-1.0-py2-none-any.whl", other, None),
                file(
                    "demo-1.0-cp313-cp313-musllinux_1_2_x86_64.whl",
                    wheel,
                    Some("up"),
                ),
                file("demo-1.0-py3-none-win32.whl", wheel, None),
            ],
        };
        let stored = |sha| ExtractedMetadata {
            wheel_sha256: sha,
            outcome: Extraction::Stored {
                metadata_sha256: metadata,
            },
        };
        let extracted = HashMap::from([
            ("demo-1.0-py3-none-any.whl".to_string(), stored(wheel)),
            ("demo-1.0-py2-none-any.whl".to_string(), stored(wheel)),
            (
                "demo-1.0-cp313-cp313-musllinux_1_2_x86_64.whl".to_string(),
                stored(wheel),
            ),
            (
                "demo-1.0-py3-none-win32.whl".to_string(),
                ExtractedMetadata {
                    wheel_sha256: wheel,
                    outcome: Extraction::Refused {
                        reason: "no METADATA".into(),
                    },
                },
            ),
        ]);
        advertise(&mut detail, &extracted);
        let advertised: Vec<Option<&str>> = detail
            .files
            .iter()
            .map(|file| file.core_metadata.sha256_hex())
            .collect();
        let hex = metadata.to_hex();
        assert_eq!(advertised, [Some(hex.as_str()), None, Some("up"), None]);
        assert_eq!(
            detail.files[0].dist_info_metadata,
            detail.files[0].core_metadata
        );
    }
}
