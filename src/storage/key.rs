//! Where things live in the object store. Every key the crate writes is built here.

use object_store::path::Path;

use crate::pypi::Sha256Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKey {
    /// `sha256/ab/cd/abcd…`: two fan-out levels keep directories small on file systems.
    Blob(Sha256Digest),
}

impl StorageKey {
    pub fn path(&self) -> Path {
        match self {
            Self::Blob(digest) => {
                let hex = digest.to_hex();
                Path::from(format!("sha256/{}/{}/{hex}", &hex[0..2], &hex[2..4]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_fan_out_by_digest_prefix() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            StorageKey::Blob(digest).path().as_ref(),
            "sha256/ba/78/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
