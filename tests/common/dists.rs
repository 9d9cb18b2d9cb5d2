//! Wheels and sdists built by the tests, byte for byte what packaging tools write.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::Digest as _;

pub struct WheelSpec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub tag: &'a str,
    pub requires_python: Option<&'a str>,
    pub requires_dist: &'a [&'a str],
    /// Name in METADATA when it should differ from the filename's (a hostile wheel).
    pub metadata_name: Option<&'a str>,
    /// Extra `(path, bytes)` entries, e.g. a fake extension module.
    pub files: Vec<(String, Vec<u8>)>,
    /// Entries stored, not deflated: large incompressible wheels are written fast.
    pub stored: bool,
}

impl<'a> WheelSpec<'a> {
    pub fn new(name: &'a str, version: &'a str, tag: &'a str) -> Self {
        Self {
            name,
            version,
            tag,
            requires_python: None,
            requires_dist: &[],
            metadata_name: None,
            files: Vec::new(),
            stored: false,
        }
    }

    pub fn filename(&self) -> String {
        format!(
            "{}-{}-{}.whl",
            self.name.replace('-', "_"),
            self.version,
            self.tag
        )
    }

    pub fn metadata(&self) -> String {
        let mut metadata = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\nSummary: test distribution\n",
            self.metadata_name.unwrap_or(self.name),
            self.version
        );
        if let Some(requires_python) = self.requires_python {
            metadata.push_str(&format!("Requires-Python: {requires_python}\n"));
        }
        for requirement in self.requires_dist {
            metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
        }
        metadata
    }

    /// Writes the wheel into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let dist_info = format!("{}-{}.dist-info", self.name.replace('-', "_"), self.version);
        let module = self.name.replace('-', "_");
        let root_is_purelib = self.tag.ends_with("-none-any");
        let mut entries: Vec<(String, Vec<u8>)> = vec![(
            format!("{module}/__init__.py"),
            format!("VERSION = {:?}\n", self.version).into_bytes(),
        )];
        entries.extend(self.files.iter().cloned());
        entries.push((
            format!("{dist_info}/METADATA"),
            self.metadata().into_bytes(),
        ));
        let wheel = format!(
            "Wheel-Version: 1.0\nGenerator: edelweiss-tests\nRoot-Is-Purelib: {root_is_purelib}\nTag: {}\n",
            self.tag
        );
        entries.push((format!("{dist_info}/WHEEL"), wheel.into_bytes()));
        let mut record = String::new();
        for (path, bytes) in &entries {
            let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(bytes));
            record.push_str(&format!("{path},sha256={digest},{}\n", bytes.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        entries.push((format!("{dist_info}/RECORD"), record.into_bytes()));
        let path = dir.join(self.filename());
        let method = match self.stored {
            true => zip::CompressionMethod::Stored,
            false => zip::CompressionMethod::Deflated,
        };
        write_zip_with(&path, &entries, method);
        path
    }
}

pub fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    write_zip_with(path, entries, zip::CompressionMethod::Deflated);
}

fn write_zip_with(path: &Path, entries: &[(String, Vec<u8>)], method: zip::CompressionMethod) {
    let file = std::fs::File::create(path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .large_file(
            entries
                .iter()
                .any(|(_, bytes)| bytes.len() > u32::MAX as usize / 2),
        );
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).expect("zip entry");
        zip.write_all(bytes).expect("zip write");
    }
    zip.finish().expect("zip finish");
}

/// A `name-version.tar.gz` sdist with `PKG-INFO` and a setup.py, plus `extra` entries.
pub fn write_sdist(dir: &Path, name: &str, version: &str, extra: &[(&str, &[u8])]) -> PathBuf {
    let setup =
        format!("from setuptools import setup\nsetup(name={name:?}, version={version:?})\n");
    write_sdist_with_setup(dir, name, version, &setup, extra, "")
}

/// An sdist whose `setup.py` is `setup`; `extra` paths are relative to the sdist's top directory.
pub fn write_project_sdist(
    dir: &Path,
    name: &str,
    version: &str,
    setup: &str,
    extra: &[(&str, &str)],
) -> PathBuf {
    write_project_sdist_declaring(dir, name, version, setup, extra, "")
}

/// Like [`write_project_sdist`], with `pkg_info` lines added to PKG-INFO, such as
/// `Dynamic: Requires-Dist`, which makes a resolver ask the build backend for metadata.
pub fn write_project_sdist_declaring(
    dir: &Path,
    name: &str,
    version: &str,
    setup: &str,
    extra: &[(&str, &str)],
    pkg_info: &str,
) -> PathBuf {
    let top = format!("{}-{version}", name.replace('-', "_"));
    let entries: Vec<(String, Vec<u8>)> = extra
        .iter()
        .map(|(path, text)| (format!("{top}/{path}"), text.as_bytes().to_vec()))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
        .collect();
    write_sdist_with_setup(dir, name, version, setup, &borrowed, pkg_info)
}

fn write_sdist_with_setup(
    dir: &Path,
    name: &str,
    version: &str,
    setup: &str,
    extra: &[(&str, &[u8])],
    pkg_info_lines: &str,
) -> PathBuf {
    let top = format!("{}-{version}", name.replace('-', "_"));
    let path = dir.join(format!("{top}.tar.gz"));
    let file = std::fs::File::create(&path).expect("create sdist");
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    let pkg_info = format!(
        "Metadata-Version: 2.2\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n{pkg_info_lines}"
    );
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (format!("{top}/PKG-INFO"), pkg_info.into_bytes()),
        (format!("{top}/setup.py"), setup.as_bytes().to_vec()),
    ];
    entries.extend(
        extra
            .iter()
            .map(|(path, bytes)| (path.to_string(), bytes.to_vec())),
    );
    for (entry_path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        // Written raw: the tar crate refuses `..`, and hostile sdists need it.
        let name = &mut header.as_old_mut().name;
        name[..entry_path.len()].copy_from_slice(entry_path.as_bytes());
        header.set_cksum();
        archive
            .append(&header, bytes.as_slice())
            .expect("tar entry");
    }
    archive
        .into_inner()
        .expect("tar finish")
        .finish()
        .expect("gzip finish");
    path
}

/// Three wheels of one project for one version: pure Python, musllinux and manylinux.
pub fn platform_wheels(dir: &Path, name: &str, version: &str) -> Vec<PathBuf> {
    let extension = |libc: &str| {
        (
            format!(
                "{}/_speedups.cpython-313-x86_64-linux-{libc}.so",
                name.replace('-', "_")
            ),
            format!("\x7fELF fake {libc} extension").into_bytes(),
        )
    };
    let mut musl = WheelSpec::new(name, version, "cp313-cp313-musllinux_1_2_x86_64");
    musl.files.push(extension("musl"));
    musl.requires_python = Some(">=3.13");
    let mut many = WheelSpec::new(name, version, "cp313-cp313-manylinux_2_17_x86_64");
    many.files.push(extension("gnu"));
    many.requires_python = Some(">=3.13");
    vec![musl.write(dir), many.write(dir)]
}

/// Incompressible bytes (xorshift64), so archive sizes are what the test means them to be.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// A tar stream written header by header, for the hostile sdists the `tar` crate refuses to
/// write: long-name and PAX records of any announced size, links anywhere, sparse maps,
/// data behind directories.
#[derive(Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

/// One 512-byte GNU header; `path` and `link` are written raw (at most 100 bytes each).
pub fn tar_header(path: &[u8], type_flag: u8, size: u64, link: &[u8]) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(if type_flag == b'5' { 0o755 } else { 0o644 });
    header.set_entry_type(tar::EntryType::new(type_flag));
    let old = header.as_old_mut();
    old.name[..path.len()].copy_from_slice(path);
    old.linkname[..link.len()].copy_from_slice(link);
    header.set_cksum();
    header
}

/// One PAX record, `"<length> <key>=<value>\n"`, its length counting itself.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while length.to_string().len() + body.len() > length {
        length += 1;
    }
    format!("{length}{body}").into_bytes()
}

impl RawTar {
    /// A `name-version/` sdist whose first member is a valid PKG-INFO.
    pub fn sdist(name: &str, version: &str) -> Self {
        let pkg_info = format!("Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n");
        Self::default().member(
            &format!("{name}-{version}/PKG-INFO"),
            b'0',
            pkg_info.as_bytes(),
        )
    }

    /// A header announcing `size` bytes, without them.
    pub fn announce(mut self, path: &[u8], type_flag: u8, size: u64) -> Self {
        self.bytes
            .extend_from_slice(tar_header(path, type_flag, size, b"").as_bytes());
        self
    }

    /// Raw bytes, e.g. the data an announcing header promised.
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// A header and its data, padded to a block.
    pub fn member(self, path: &str, type_flag: u8, data: &[u8]) -> Self {
        self.record(path.as_bytes(), type_flag, data)
    }

    /// A header with any path bytes (a `././@LongLink`, a `PaxHeader`) and its data.
    pub fn record(mut self, path: &[u8], type_flag: u8, data: &[u8]) -> Self {
        self = self.announce(path, type_flag, data.len() as u64);
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().next_multiple_of(512), 0);
        self
    }

    /// A symbolic (`b'2'`) or hard (`b'1'`) link.
    pub fn link(mut self, path: &str, type_flag: u8, target: &str) -> Self {
        self.bytes.extend_from_slice(
            tar_header(path.as_bytes(), type_flag, 0, target.as_bytes()).as_bytes(),
        );
        self
    }

    /// The tar bytes so far, ended by two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0; 1024]);
        self.bytes
    }

    /// The tar bytes so far, unended (for a header whose data never comes).
    pub fn unfinished(self) -> Vec<u8> {
        self.bytes
    }

    /// The finished archive, gzipped: a `.tar.gz` sdist.
    pub fn gzip(self) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&self.finish()).expect("gzip");
        encoder.finish().expect("gzip finish")
    }
}

/// A gzip stream of `prefix`, `times` copies of `chunk`, then `suffix`, made without
/// compressing every copy: `chunk` is deflated once, after a full flush so that it refers
/// to nothing before it, and the copies of its blocks repeat. Gigabytes of decompressed
/// bytes cost the test a few kilobytes per copy.
pub fn gzip_repeating(prefix: &[u8], chunk: &[u8], times: usize, suffix: &[u8]) -> Vec<u8> {
    let deflate = |data: &[u8], flush: flate2::FlushCompress| {
        let mut compressor = flate2::Compress::new(flate2::Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        compressor
            .compress_vec(data, &mut out, flush)
            .expect("deflate");
        assert_eq!(
            compressor.total_in(),
            data.len() as u64,
            "deflate output space"
        );
        out
    };
    let mut stream = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    stream.extend(deflate(prefix, flate2::FlushCompress::Full));
    let block = deflate(chunk, flate2::FlushCompress::Full);
    for _ in 0..times {
        stream.extend_from_slice(&block);
    }
    stream.extend(deflate(suffix, flate2::FlushCompress::Finish));
    let mut crc = flate2::Crc::new();
    crc.update(prefix);
    let mut chunk_crc = flate2::Crc::new();
    chunk_crc.update(chunk);
    for _ in 0..times {
        crc.combine(&chunk_crc);
    }
    let mut suffix_crc = flate2::Crc::new();
    suffix_crc.update(suffix);
    crc.combine(&suffix_crc);
    let total = prefix.len() as u64 + chunk.len() as u64 * times as u64 + suffix.len() as u64;
    stream.extend_from_slice(&crc.sum().to_le_bytes());
    stream.extend_from_slice(&(total as u32).to_le_bytes());
    stream
}

/// Adds a symbolic link entry (Unix mode `120777`, the target as its content) to a zip.
pub fn append_zip_symlink(path: &Path, name: &str, target: &str) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open zip");
    let mut zip = zip::ZipWriter::new_append(file).expect("append to zip");
    zip.add_symlink(name, target, zip::write::SimpleFileOptions::default())
        .expect("zip symlink");
    zip.finish().expect("zip finish");
}
