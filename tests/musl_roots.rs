//! The musl test roots themselves (`workers/musl-root/build`): the runtime root has the stdlib
//! modules python:3.13-alpine has, and the builder root the headers and libraries behind them,
//! so that wheels whose code imports them, and sdists that compile against them, work as on
//! Alpine.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::text;

/// The modules beyond the core that python:3.13-alpine carries, each doing one real thing.
const STDLIB_EXERCISE: &str = r#"
import bz2, curses, lzma, readline, sqlite3, uuid
db = sqlite3.connect(":memory:")
db.execute("create table points (name text, x real)")
db.executemany("insert into points values (?, ?)", [("a", 1.5), ("b", 2.5)])
assert db.execute("select count(*), sum(x) from points").fetchone() == (2, 4.0)
assert db.execute("select json_extract('{\"a\": [1, 2]}', '$.a[1]')").fetchone() == (2,)
data = b"edelweiss musl root " * 500
packed = bz2.compress(data)
assert len(packed) < len(data) // 10 and bz2.decompress(packed) == data
packed = lzma.compress(data, format=lzma.FORMAT_XZ)
assert packed.startswith(b"\xfd7zXZ") and lzma.decompress(packed) == data
# uuid1 through libuuid's uuid_generate_time_safe (_uuid), not the pure-Python fallback.
assert uuid._generate_time_safe is not None
first, second = uuid.uuid1(), uuid.uuid1()
assert first.version == 1 and first != second
assert uuid.uuid4().version == 4
assert readline._READLINE_LIBRARY_VERSION.startswith("8.")
assert curses.version
print("sqlite", sqlite3.sqlite_version, "readline", readline._READLINE_LIBRARY_VERSION)
"#;

fn in_runtime_root(code: &str) -> Output {
    let site = tempfile::tempdir().unwrap();
    common::musl_root::run_in_runtime_root(site.path(), &["/usr/local/bin/python3.13", "-c", code])
}

#[test]
fn the_runtime_root_has_sqlite3_bz2_lzma_uuid_readline_and_curses() {
    let runtime = &common::musl_root::musl_root().runtime;
    assert!(
        !runtime.join("usr/local/include").exists(),
        "the runtime root carries no headers"
    );
    let output = in_runtime_root(STDLIB_EXERCISE);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("sqlite 3.40.1 readline 8.2"),
        "{}",
        text(&output)
    );
}

/// A C program against each of those libraries' headers, compiled, linked and run in the
/// builder root (read-only, offline), as an sdist's extension would be.
const LIBRARIES_PROGRAM: &str = r#"
#include <bzlib.h>
#include <lzma.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

int main(void) {
    sqlite3 *db;
    sqlite3_stmt *statement;
    uuid_t id;
    char text[37], packed[256], unpacked[64];
    unsigned int packed_length = sizeof packed, unpacked_length = sizeof unpacked;
    const char *message = "sdists compile against the builder's headers";
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
    if (sqlite3_prepare_v2(db, "select 6 * 7", -1, &statement, NULL) != SQLITE_OK) return 2;
    if (sqlite3_step(statement) != SQLITE_ROW || sqlite3_column_int(statement, 0) != 42) return 3;
    sqlite3_finalize(statement);
    sqlite3_close(db);
    if (BZ2_bzBuffToBuffCompress(packed, &packed_length, (char *)message, strlen(message) + 1, 9, 0, 0) != BZ_OK) return 4;
    if (BZ2_bzBuffToBuffDecompress(unpacked, &unpacked_length, packed, packed_length, 0, 0) != BZ_OK) return 5;
    if (strcmp(unpacked, message) != 0) return 6;
    uuid_generate_time(id);
    uuid_unparse(id, text);
    printf("sqlite %s, bzip2 %s, xz %s, uuid %s\n", sqlite3_libversion(), BZ2_bzlibVersion(),
           lzma_version_string(), text);
    return 0;
}
"#;

#[test]
fn the_builder_root_compiles_against_their_headers() {
    let builder = &common::musl_root::musl_root().builder;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("libraries.c"), LIBRARIES_PROGRAM).unwrap();
    let output = in_builder_root(
        builder,
        work.path(),
        "cc -O2 -o libraries libraries.c -lsqlite3 -lbz2 -llzma -luuid && ./libraries",
    );
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("sqlite 3.40.1, bzip2 1.0.8"), "{said}");
    assert!(said.contains("xz 5.4.1"), "{said}");
}

/// `script` in the builder root, read-only and offline, with `work` at /tmp/work.
fn in_builder_root(builder: &Path, work: &Path, script: &str) -> Output {
    Command::new("bwrap")
        .arg("--ro-bind")
        .arg(builder)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .arg("--bind")
        .arg(work)
        .arg("/tmp/work")
        .args(["--chdir", "/tmp/work", "--unshare-net", "--clearenv"])
        .args(["--setenv", "HOME", "/tmp", "--setenv", "PATH"])
        .arg("/usr/local/bin:/usr/bin:/bin")
        .args(["/bin/sh", "-euc", script])
        .output()
        .expect("bwrap (bubblewrap)")
}
