//! Why a build failed, in one line: the first compiler, linker or build-backend error in a
//! step's log and, where it is a missing header, library or `*-config` program, the Alpine
//! package a recipe would add. Logs are a package's output: lines are bounded and cleaned
//! before they reach a record or a page.

use std::fmt;

/// How much of a log line a diagnosis keeps.
const MAX_LINE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub line: String,
    pub alpine_package: Option<&'static str>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)?;
        if let Some(package) = self.alpine_package {
            write!(f, " (a recipe would add the Alpine package `{package}`)")?;
        }
        Ok(())
    }
}

/// Headers, libraries and `*-config` programs, by the name a log gives them, and the
/// Alpine package that provides each.
const ALPINE_PACKAGES: &[(&str, &str)] = &[
    ("ffi.h", "libffi-dev"),
    ("openssl/", "openssl-dev"),
    ("zlib.h", "zlib-dev"),
    ("libpq-fe.h", "libpq-dev"),
    ("pg_config", "libpq-dev"),
    ("sqlite3.h", "sqlite-dev"),
    ("bzlib.h", "bzip2-dev"),
    ("lzma.h", "xz-dev"),
    ("uuid/uuid.h", "util-linux-dev"),
    ("libxml/", "libxml2-dev"),
    ("xml2-config", "libxml2-dev"),
    ("libxslt/", "libxslt-dev"),
    ("xslt-config", "libxslt-dev"),
    ("jpeglib.h", "libjpeg-turbo-dev"),
    ("png.h", "libpng-dev"),
    ("ft2build.h", "freetype-dev"),
    ("yaml.h", "yaml-dev"),
    ("gdal-config", "gdal-dev"),
    ("gdal.h", "gdal-dev"),
    ("proj.h", "proj-dev"),
    ("geos_c.h", "geos-dev"),
    ("geos-config", "geos-dev"),
    ("mysql_config", "mariadb-dev"),
    ("mysql.h", "mariadb-dev"),
    ("krb5", "krb5-dev"),
    ("gmp.h", "gmp-dev"),
    ("curl/curl.h", "curl-dev"),
    ("curl-config", "curl-dev"),
    ("ldap.h", "openldap-dev"),
    ("sasl/sasl.h", "cyrus-sasl-dev"),
    ("hdf5.h", "hdf5-dev"),
    ("cairo.h", "cairo-dev"),
    ("glib.h", "glib-dev"),
    ("ncurses.h", "ncurses-dev"),
    ("curses.h", "ncurses-dev"),
    ("readline/readline.h", "readline-dev"),
    ("expat.h", "expat-dev"),
    ("magic.h", "file-dev"),
    ("lz4.h", "lz4-dev"),
    ("zstd.h", "zstd-dev"),
    ("snappy", "snappy-dev"),
    ("systemd/", "systemd-dev"),
    ("-lpq", "libpq-dev"),
    ("-lssl", "openssl-dev"),
    ("-lcrypto", "openssl-dev"),
    ("-lffi", "libffi-dev"),
    ("-lz", "zlib-dev"),
    ("-ljpeg", "libjpeg-turbo-dev"),
    ("-lxml2", "libxml2-dev"),
    ("-lsqlite3", "sqlite-dev"),
    ("-lzstd", "zstd-dev"),
];

/// Substrings that mark a line as the error itself, most telling first within a line.
const ERROR_MARKS: &[&str] = &[
    "fatal error:",
    "No module named",
    "requires a different Python",
    "cannot find -l",
    "executable not found",
    "Could not find",
    ": not found",
    ": error:",
    "error[E",
    // cargo offline (a crate missing from the vendor directory), a build script, a link;
    // maturin's error chain.
    "error: no matching package",
    "error: failed to ",
    "error: linking with",
    "Caused by: ",
    "Error: ",
    // setuptools-rust without cargo; meson fetching a wrap subproject offline; zig's linker;
    // auditwheel handed a wheel with no extension in it.
    "can't find Rust compiler",
    "Git program not found",
    "unsupported linker arg",
    "does not look like a platform wheel",
];

/// pip's and the backends' own framing around a failure: never the reason itself.
const FRAMING: &[&str] = &[
    "subprocess-exited-with-error",
    "metadata-generation-failed",
    "Failed to build",
    "ERROR: Failed building wheel",
    "legacy-install-failure",
];

/// The first line of `log` that says what went wrong, if any does.
pub fn first_error(log: &str) -> Option<Diagnosis> {
    let line = log
        .lines()
        .map(str::trim)
        .filter(|line| !FRAMING.iter().any(|framing| line.contains(framing)))
        .find(|line| ERROR_MARKS.iter().any(|mark| line.contains(mark)))?;
    let line = cleaned(line);
    let alpine_package = ALPINE_PACKAGES
        .iter()
        .find(|(needle, _)| mentions(&line, needle))
        .map(|(_, package)| *package);
    Some(Diagnosis {
        line,
        alpine_package,
    })
}

/// `-lz` must not match `-lzstd`: a library flag counts only as a whole word.
fn mentions(line: &str, needle: &str) -> bool {
    if !needle.starts_with("-l") {
        return line.contains(needle);
    }
    line.match_indices(needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|next| next.is_ascii_alphanumeric() || next == '_')
    })
}

/// Control characters (terminal escapes, carriage returns) dropped, length bounded.
fn cleaned(line: &str) -> String {
    let mut kept: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LINE_CHARS)
        .collect();
    if line.chars().filter(|c| !c.is_control()).count() > MAX_LINE_CHARS {
        kept.push('…');
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnosis(log: &str) -> String {
        first_error(log)
            .map(|found| found.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn names_the_missing_header_and_its_package() {
        let log = "running build_ext\nbuilding '_cffi_backend' extension\n\
            gcc -fno-strict-overflow -I/usr/local/include -c src/c/_cffi_backend.c\n\
            src/c/_cffi_backend.c:15:10: fatal error: ffi.h: No such file or directory\n\
            compilation terminated.\nerror: command '/usr/bin/gcc' failed with exit code 1\n\
            error: subprocess-exited-with-error\n";
        assert_eq!(
            diagnosis(log),
            "src/c/_cffi_backend.c:15:10: fatal error: ffi.h: No such file or directory \
             (a recipe would add the Alpine package `libffi-dev`)"
        );
        assert!(
            diagnosis("c/_cffi_backend.c:15:10: fatal error: 'ffi.h' file not found\n")
                .ends_with("`libffi-dev`)")
        );
    }

    #[test]
    fn names_backends_and_python_limits() {
        assert_eq!(
            diagnosis(
                "  × Getting requirements to build wheel did not run successfully.\n  \
                 ModuleNotFoundError: No module named 'skbuild'\n"
            ),
            "ModuleNotFoundError: No module named 'skbuild'"
        );
        assert_eq!(
            diagnosis(
                "ERROR: Package 'oldthing' requires a different Python: 3.13.5 not in '<3.13,>=3.8'\n"
            ),
            "ERROR: Package 'oldthing' requires a different Python: 3.13.5 not in '<3.13,>=3.8'"
        );
        assert!(diagnosis("Error: pg_config executable not found.\n").ends_with("`libpq-dev`)"));
        assert!(
            diagnosis("/usr/bin/ld: cannot find -lzstd: No such file or directory\n")
                .ends_with("`zstd-dev`)")
        );
    }

    #[test]
    fn names_cargo_and_maturin_errors() {
        assert_eq!(
            diagnosis(
                "   Compiling demo v1.0.0\nerror: no matching package named `ghost` found\nlocation searched: directory source `/input/cargo-vendor/crates` (which is replacing registry `crates-io`)\n"
            ),
            "error: no matching package named `ghost` found"
        );
        assert_eq!(
            diagnosis(
                "      🔗 Found pyo3 bindings\n      💥 maturin failed\n        Caused by: Python interpreter should be a kind of interpreter\n"
            ),
            "Caused by: Python interpreter should be a kind of interpreter"
        );
        assert_eq!(
            diagnosis(
                "error: failed to run custom build command for `pyo3-build-config v0.22.2`\n\nCaused by:\n"
            ),
            "error: failed to run custom build command for `pyo3-build-config v0.22.2`"
        );
    }

    #[test]
    fn names_toolchain_and_repair_errors_that_have_no_error_prefix() {
        for line in [
            "error: can't find Rust compiler",
            "ERROR: Git program not found, cannot download libcsiphash-1.wrap via git.",
            "error: unsupported linker arg: --fatal-warnings",
            "INFO:auditwheel.main_repair:This does not look like a platform wheel, no ELF executable or shared library file (including compiled Python C extension) found in the wheel archive",
        ] {
            let log = format!("running build\n{line}\nerror: subprocess-exited-with-error\n");
            assert_eq!(
                diagnosis(&log),
                line.chars().take(MAX_LINE_CHARS).collect::<String>()
                    + if line.chars().count() > MAX_LINE_CHARS {
                        "…"
                    } else {
                        ""
                    }
            );
        }
    }

    #[test]
    fn says_nothing_of_a_log_without_an_error_and_bounds_what_it_quotes() {
        assert_eq!(first_error("building wheel\nexit status 1\n"), None);
        let hostile = format!("fatal error: \u{1b}[31m{}\r", "x".repeat(5000));
        let found = first_error(&hostile).unwrap();
        assert!(found.line.chars().count() <= MAX_LINE_CHARS + 1);
        assert!(!found.line.contains('\u{1b}') && !found.line.contains('\r'));
    }
}
