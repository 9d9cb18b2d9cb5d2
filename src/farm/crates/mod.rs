//! Rust crates for an offline cargo: the crates.io packages an sdist's `Cargo.lock` files
//! name, read as data when a build is requested (their checksums enter the build key),
//! fetched from the crate registry into the blob store before the build step, and unpacked
//! into a read-only vendor directory that cargo uses instead of crates.io.

mod lock;
mod registry;
mod sdist;
mod vendor;

pub use lock::{CrateName, CrateVersion, LockError, LockedCrate, parse_lock};
pub use registry::CrateRegistry;
pub use sdist::{LockedCrates, LockedCratesCache, locked_crates};
pub use vendor::{CrateLoader, VENDOR_INPUT, write_vendor_directory};
