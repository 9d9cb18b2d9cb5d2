//! Whether a repaired wheel's ELF files can be loaded on its target: what each needs from
//! the dynamic loader against what the wheel and the target provide. No I/O here beyond
//! reading the wheel; the target's files are read by `runtime_exports`.
//!
//! musl has no symbol versions, so auditwheel cannot see that a wheel needs a libc symbol
//! the target's musl lacks (a zig debug build importing `statx`, absent from musl 1.2.3),
//! and musl binds every symbol at load time, so the import fails on the target. The rule,
//! for every ELF file in the wheel:
//!
//! - each NEEDED library is in the wheel (by file name or SONAME), or is musl itself (musl's
//!   loader answers `libc`, `libm`, `libpthread`, `libdl`, `librt`, `libutil` and `libxnet`,
//!   whatever follows the first `.`, with itself), or is on the target;
//! - each strong undefined dynamic symbol is defined by some ELF file of the wheel, by the
//!   target's libc, by the target's interpreter (its libpython and its python executable:
//!   extension modules call the C API without NEEDing libpython), or by a target library
//!   some file of the wheel NEEDs. Weak undefined symbols (`__gmon_start__`, `_ITM_*`,
//!   `__cxa_finalize`) may be absent and count for nothing.
//!
//! Symbols are matched by name over the whole wheel: a little more lenient than the loader,
//! which looks only in a file's own dependencies and the global scope. Relocatable objects
//! (`.o`) are never loaded and are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use object::read::elf::{ElfFile, FileHeader};
use object::{Object as _, ObjectSymbol as _};

/// The libraries musl's loader resolves to itself, as `lib<name>.<anything>`.
const MUSL_ITSELF: [&str; 7] = ["c", "pthread", "rt", "m", "dl", "util", "xnet"];

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    #[error("cannot read the wheel {wheel}: {reason}")]
    Wheel { wheel: String, reason: String },
    #[error("{path} in the wheel is not a readable ELF file: {reason}")]
    Elf { path: String, reason: String },
}

/// What one ELF file asks of the dynamic loader and offers to the others.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ElfSymbols {
    pub soname: Option<String>,
    /// DT_NEEDED, in order.
    pub needed: Vec<String>,
    /// Defined dynamic symbols others can bind to: global or weak, not hidden.
    pub exported: BTreeSet<String>,
    /// Undefined dynamic symbols that are not weak.
    pub required: BTreeSet<String>,
}

impl ElfSymbols {
    /// `None` for bytes that are not ELF and for relocatable objects.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, object::Error> {
        type Elf32 = object::elf::FileHeader32<object::Endianness>;
        type Elf64 = object::elf::FileHeader64<object::Endianness>;
        match object::FileKind::parse(bytes) {
            Ok(object::FileKind::Elf32) => Self::parse_elf::<Elf32>(bytes),
            Ok(object::FileKind::Elf64) => Self::parse_elf::<Elf64>(bytes),
            _ => Ok(None),
        }
    }

    fn parse_elf<Elf: FileHeader<Endian = object::Endianness>>(
        bytes: &[u8],
    ) -> Result<Option<Self>, object::Error> {
        let file = ElfFile::<Elf>::parse(bytes)?;
        if file.elf_header().e_type(file.endian()) == object::elf::ET_REL {
            return Ok(None);
        }
        let mut symbols = Self::default();
        let dynamic = file.elf_dynamic_table()?;
        for entry in &dynamic {
            let name = || {
                dynamic
                    .string(entry)
                    .map(|name| String::from_utf8_lossy(name).into_owned())
            };
            match entry.tag {
                object::elf::DT_NEEDED => symbols.needed.push(name()?),
                object::elf::DT_SONAME => symbols.soname = Some(name()?),
                _ => {}
            }
        }
        for symbol in file.dynamic_symbols() {
            let name = symbol.name()?;
            if name.is_empty() {
                continue;
            }
            if symbol.is_undefined() {
                if !symbol.is_weak() {
                    symbols.required.insert(name.to_string());
                }
            } else if symbol.scope() == object::SymbolScope::Dynamic {
                symbols.exported.insert(name.to_string());
            }
        }
        Ok(Some(symbols))
    }
}

/// One ELF file of a wheel.
#[derive(Debug, Clone)]
pub struct WheelElf {
    /// Its path in the archive.
    pub path: String,
    pub symbols: ElfSymbols,
}

impl WheelElf {
    fn answers_to(&self, needed: &str) -> bool {
        self.path.rsplit('/').next() == Some(needed)
            || self.symbols.soname.as_deref() == Some(needed)
    }
}

/// Every ELF file in the wheel at `wheel`.
pub fn wheel_elfs(wheel: &Path) -> Result<Vec<WheelElf>, SymbolsError> {
    let unreadable = |reason: String| SymbolsError::Wheel {
        wheel: wheel.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(wheel).map_err(|error| unreadable(error.to_string()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|error| unreadable(error.to_string()))?;
    let mut elfs = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| unreadable(error.to_string()))?;
        let path = entry
            .name()
            .map_err(|error| unreadable(error.to_string()))?
            .to_string();
        let mut magic = [0; 4];
        if entry.is_dir() || entry.read_exact(&mut magic).is_err() || magic != ELF_MAGIC {
            continue;
        }
        let elf_error = |reason: String| SymbolsError::Elf {
            path: path.clone(),
            reason,
        };
        let mut bytes = magic.to_vec();
        entry
            .read_to_end(&mut bytes)
            .map_err(|error| elf_error(error.to_string()))?;
        if let Some(symbols) =
            ElfSymbols::parse(&bytes).map_err(|error| elf_error(error.to_string()))?
        {
            elfs.push(WheelElf { path, symbols });
        }
    }
    Ok(elfs)
}

/// Whether musl's loader answers a NEEDED `name` with itself.
pub fn is_musl_itself(name: &str) -> bool {
    name.strip_prefix("lib").is_some_and(|rest| {
        MUSL_ITSELF.iter().any(|library| {
            rest.strip_prefix(library)
                .is_some_and(|after| after.starts_with('.'))
        })
    })
}

/// Whether a NEEDED `name` is met without the target's files: by the wheel or by musl.
fn met_by_wheel_or_musl(elfs: &[WheelElf], name: &str) -> bool {
    is_musl_itself(name) || elfs.iter().any(|elf| elf.answers_to(name))
}

/// The NEEDED names only the target can answer.
pub fn needed_from_target(elfs: &[WheelElf]) -> BTreeSet<String> {
    elfs.iter()
        .flat_map(|elf| &elf.symbols.needed)
        .filter(|name| !met_by_wheel_or_musl(elfs, name))
        .cloned()
        .collect()
}

/// The symbols the target exports to a wheel's ELF files.
#[derive(Debug, Clone, Default)]
pub struct TargetExports {
    pub libc: Arc<BTreeSet<String>>,
    pub interpreter: Arc<BTreeSet<String>>,
    /// Of the names `needed_from_target` gave, those the target has.
    pub libraries: BTreeMap<String, Arc<BTreeSet<String>>>,
}

impl TargetExports {
    fn exports(&self, symbol: &str) -> bool {
        self.libc.contains(symbol)
            || self.interpreter.contains(symbol)
            || self
                .libraries
                .values()
                .any(|library| library.contains(symbol))
    }
}

/// An ELF file of the wheel and what neither the wheel nor the target provides for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub path: String,
    pub libraries: Vec<String>,
    pub symbols: Vec<String>,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.symbols.join(", "))?;
        if !self.libraries.is_empty() {
            let separator = if self.symbols.is_empty() { "" } else { "; " };
            write!(f, "{separator}libraries {}", self.libraries.join(", "))?;
        }
        Ok(())
    }
}

/// The files of the wheel that would not load on the target, by the rule in the module
/// documentation.
pub fn unresolved(elfs: &[WheelElf], target: &TargetExports) -> Vec<Unresolved> {
    let in_wheel: BTreeSet<&str> = elfs
        .iter()
        .flat_map(|elf| elf.symbols.exported.iter().map(String::as_str))
        .collect();
    elfs.iter()
        .filter_map(|elf| {
            let libraries: Vec<String> = elf
                .symbols
                .needed
                .iter()
                .filter(|name| {
                    !met_by_wheel_or_musl(elfs, name) && !target.libraries.contains_key(*name)
                })
                .cloned()
                .collect();
            let symbols: Vec<String> = elf
                .symbols
                .required
                .iter()
                .filter(|symbol| !in_wheel.contains(symbol.as_str()) && !target.exports(symbol))
                .cloned()
                .collect();
            (!libraries.is_empty() || !symbols.is_empty()).then(|| Unresolved {
                path: elf.path.clone(),
                libraries,
                symbols,
            })
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write as _;
    use std::path::PathBuf;

    /// A shared library built by the host's `musl-gcc` (musl-tools, which .ci/setup installs),
    /// linked against `libraries`.
    pub(in crate::farm) fn shared_library(
        dir: &Path,
        name: &str,
        source: &str,
        libraries: &[&str],
    ) -> Vec<u8> {
        let source_path = dir.join(format!("{name}.c"));
        std::fs::write(&source_path, source).unwrap();
        let output = std::process::Command::new("musl-gcc")
            .args(["-shared", "-fPIC", &format!("-Wl,-soname,{name}"), "-o"])
            .arg(dir.join(name))
            .arg(&source_path)
            .args(libraries.iter().map(|library| dir.join(library)))
            .output()
            .expect("musl-gcc (musl-tools)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read(dir.join(name)).unwrap()
    }

    pub(in crate::farm) fn wheel(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("demo-1.0-cp313-cp313-musllinux_1_2_x86_64.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    fn exports(bytes: &[u8]) -> Arc<BTreeSet<String>> {
        Arc::new(ElfSymbols::parse(bytes).unwrap().unwrap().exported)
    }

    /// The host's musl, Debian bookworm's 1.2.3, whose loader is its libc: it has no `statx`
    /// (added in 1.2.5), the symbol of the issue.
    fn host_musl() -> TargetExports {
        let libc = std::fs::read("/lib/ld-musl-x86_64.so.1").expect("the host's musl (musl)");
        TargetExports {
            libc: exports(&libc),
            ..TargetExports::default()
        }
    }

    const EXTENSION: &str = "#include <stdio.h>\n\
        extern int statx(int, const char *, int, unsigned, void *);\n\
        extern const char *gnu_get_libc_version(void);\n\
        extern void optional_hook(void) __attribute__((weak));\n\
        int probe(void) { if (optional_hook) optional_hook(); printf(\"%s\", gnu_get_libc_version());\n\
        return statx(0, \"/\", 0, 0, 0); }\n";

    #[test]
    fn symbols_the_targets_musl_lacks_are_named_and_weak_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let extension = shared_library(dir.path(), "_probe.so", EXTENSION, &[]);
        let wheel = wheel(
            dir.path(),
            &[
                ("demo/__init__.py", b"".as_slice()),
                ("demo/_probe.cpython-313-x86_64-linux-musl.so", &extension),
            ],
        );
        let elfs = wheel_elfs(&wheel).unwrap();
        assert_eq!(elfs.len(), 1, "the Python file is not ELF");
        let required = &elfs[0].symbols.required;
        assert!(required.contains("printf") && required.contains("statx"));
        assert!(!required.contains("optional_hook"));
        assert!(
            !required.contains("_ITM_registerTMCloneTable"),
            "weak in crtbeginS.o"
        );
        let unresolved = unresolved(&elfs, &host_musl());
        assert_eq!(
            unresolved,
            vec![Unresolved {
                path: "demo/_probe.cpython-313-x86_64-linux-musl.so".into(),
                libraries: vec![],
                symbols: vec!["gnu_get_libc_version".into(), "statx".into()],
            }]
        );
        assert_eq!(
            unresolved[0].to_string(),
            "demo/_probe.cpython-313-x86_64-linux-musl.so: gnu_get_libc_version, statx"
        );
    }

    #[test]
    fn vendored_libraries_and_the_interpreter_provide_symbols() {
        let dir = tempfile::tempdir().unwrap();
        let helper = shared_library(
            dir.path(),
            "libhelper-0a1b2c3d.so.1",
            "int helper(void) { return 42; }\n",
            &[],
        );
        let libpython = shared_library(
            dir.path(),
            "libpython3.13.so.1.0",
            "long PyLong_FromLong(long v) { return v; }\n",
            &[],
        );
        let extension = shared_library(
            dir.path(),
            "_speed.so",
            "extern int helper(void); extern long PyLong_FromLong(long);\n\
             long PyInit__speed(void) { return PyLong_FromLong(helper()); }\n",
            &["libhelper-0a1b2c3d.so.1"],
        );
        let wheel = wheel(
            dir.path(),
            &[
                ("demo/_speed.cpython-313-x86_64-linux-musl.so", &extension),
                ("demo.libs/libhelper-0a1b2c3d.so.1", &helper),
            ],
        );
        let elfs = wheel_elfs(&wheel).unwrap();
        assert_eq!(
            elfs[0].symbols.needed,
            ["libhelper-0a1b2c3d.so.1", "libc.so"]
        );
        assert!(needed_from_target(&elfs).is_empty());
        let mut target = host_musl();
        assert_eq!(unresolved(&elfs, &target)[0].symbols, ["PyLong_FromLong"]);
        target.interpreter = exports(&libpython);
        assert_eq!(unresolved(&elfs, &target), vec![]);
    }

    #[test]
    fn a_library_neither_in_the_wheel_nor_on_the_target_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let libz = shared_library(
            dir.path(),
            "libz.so.1",
            "int deflate(void *s, int f) { return f; }\n",
            &[],
        );
        let extension = shared_library(
            dir.path(),
            "_zip.so",
            "extern int deflate(void *, int); int squeeze(void) { return deflate(0, 4); }\n",
            &["libz.so.1"],
        );
        let wheel = wheel(dir.path(), &[("demo/_zip.so", &extension)]);
        let elfs = wheel_elfs(&wheel).unwrap();
        assert_eq!(
            needed_from_target(&elfs),
            BTreeSet::from(["libz.so.1".into()])
        );
        let mut target = host_musl();
        let unresolved_here = unresolved(&elfs, &target);
        assert_eq!(unresolved_here[0].libraries, ["libz.so.1"]);
        assert_eq!(
            unresolved_here[0].to_string(),
            "demo/_zip.so: deflate; libraries libz.so.1"
        );
        target.libraries.insert("libz.so.1".into(), exports(&libz));
        assert_eq!(unresolved(&elfs, &target), vec![]);
    }

    #[test]
    fn musl_answers_its_own_library_names() {
        for name in [
            "libc.so",
            "libc.musl-x86_64.so.1",
            "libc.so.6",
            "libm.so.6",
            "libpthread.so.0",
            "libdl.so.2",
        ] {
            assert!(is_musl_itself(name), "{name}");
        }
        for name in [
            "libcrypto.so.3",
            "libz.so.1",
            "libmagic.so.1",
            "libc",
            "c.so",
        ] {
            assert!(!is_musl_itself(name), "{name}");
        }
    }

    #[test]
    fn bytes_that_are_not_elf_are_skipped() {
        assert_eq!(ElfSymbols::parse(b"#!/bin/sh\n").unwrap(), None);
        assert!(ElfSymbols::parse(b"\x7fELF\x02\x01 truncated").is_err());
    }
}
