//! Writes one project of COUNT wheels straight into a data directory's index, for
//! bench/pages.sh. `edelweiss add` checks each new file against every file its project
//! holds (a release holds one file per identity) and flushes once per file, so adding
//! 40,000 files to one project one by one takes hours; this writes the records `add` would
//! write (`PROJECT-1.<n / 1000>.<n % 1000>-py3-none-any.whl`, uploaded) in one batch. No
//! blobs are written: the pages list the files, and nothing in the benchmark downloads them.
//!
//!     cargo run --release --example bench_fill_index -- DATA_DIR PROJECT COUNT
//!
//! The keys are those `metadata/sled_store.rs` documents: `files` (`name \0 filename`),
//! `digests` (`sha256 \0 filename` → the files key), `projects` (name).

use std::path::PathBuf;

use edelweiss::metadata::{FileKind, FileOrigin, FileRecord, ProjectRecord, SledIndex};
use edelweiss::pypi::{Sha256Digest, parse_package_name};

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, project, count] = arguments.as_slice() else {
        anyhow::bail!("usage: bench_fill_index DATA_DIR PROJECT COUNT");
    };
    let name = parse_package_name(project)?.to_string();
    let count: usize = count.parse()?;
    std::fs::create_dir_all(data_dir)?;
    let index = SledIndex::open(&PathBuf::from(data_dir).join("index.sled"), 64 << 20)?;
    let database = index.database();
    let (projects, files, digests) = (
        database.open_tree("projects")?,
        database.open_tree("files")?,
        database.open_tree("digests")?,
    );
    let module = name.replace('-', "_");
    let (mut file_batch, mut digest_batch) = (sled::Batch::default(), sled::Batch::default());
    for number in 0..count {
        let version = format!("1.{}.{}", number / 1000, number % 1000);
        let filename = format!("{module}-{version}-py3-none-any.whl");
        let sha256 = Sha256Digest::of(filename.as_bytes());
        let record = FileRecord {
            project: name.clone(),
            filename: filename.clone(),
            version,
            kind: FileKind::Wheel,
            sha256,
            size: 1_500,
            upload_time: "2025-06-01T12:00:00.000000Z".into(),
            requires_python: Some(">=3.8".into()),
            metadata_sha256: Some(Sha256Digest::of(sha256.to_hex().as_bytes())),
            yanked: None,
            origin: FileOrigin::Uploaded,
        };
        let key = [name.as_bytes(), b"\0", filename.as_bytes()].concat();
        file_batch.insert(key.clone(), serde_json::to_vec(&record)?);
        let digest_key = [sha256.to_hex().as_bytes(), b"\0", filename.as_bytes()].concat();
        digest_batch.insert(digest_key, key);
    }
    files.apply_batch(file_batch)?;
    digests.apply_batch(digest_batch)?;
    let record = ProjectRecord {
        name: name.clone(),
        display_name: name.clone(),
        uploaded: true,
    };
    projects.insert(name.as_bytes(), serde_json::to_vec(&record)?)?;
    database.flush()?;
    println!("{count} files of {name} in {data_dir}");
    Ok(())
}
