//! Pure packaging types: names, versions, tags, filenames, core metadata, the simple-API
//! wire documents and PyPI's JSON API documents. Nothing here does I/O or depends on the
//! rest of the crate.

mod digest;
mod excerpt;
mod filename;
mod hashes;
mod identity;
pub mod json_api;
mod metadata;
mod name;
pub mod simple;
pub mod simple_html;
mod tags;
mod target;
mod user_agent;
mod wheel_info;

pub use digest::{DigestError, Sha256Digest};
pub use excerpt::{EXCERPT_CHARS, Excerpt, excerpt, excerpt_to};
pub use filename::{DistFilename, FilenameError, SdistExtension, SdistFilename, WheelFilename};
pub use identity::DistIdentity;
pub use metadata::{CoreMetadata, MetadataError};
pub use name::{InvalidProjectName, PackageName, parse_package_name};
pub use pep440_rs::Version;
pub use tags::{Arch, PlatformTag, TagError, TagTriple};
pub use target::{Target, TargetError};
pub use user_agent::target_from_user_agent;
pub use wheel_info::{WheelInfo, WheelInfoError};
