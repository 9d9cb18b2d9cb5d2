//! C++ through the build farm on the test root's C++ layer (`workers/musl-root/build --cxx`):
//! real sdists of ujson, msgpack and GDAL's bindings into repaired musllinux wheels that work
//! in a fresh runtime root with no compiler, no libgdal, no proj.db and no environment; and C
//! beside C++ there, compiled by the root's gcc as on Alpine.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use common::dists::write_project_sdist;
use common::farm::{Runtime, build_to_end, pypi_file, pypi_musllinux_wheel, pypi_sdist};
use common::server::{TestServer, base_config};
use common::text;

/// The libgdal version of the C++ layer (Debian bookworm's gdal source package).
const LAYER_GDAL: &str = "3.6.2";

/// A farm server whose builder is the C++ layer, with the shipped recipes.
fn cxx_server(runtime: Runtime) -> TestServer {
    let (builder, runtime_image) = runtime.cxx_builders();
    let build = common::farm::build_config(runtime.name(), &builder, &runtime_image, 1800)
        .replace("memory_mb = 1024", "memory_mb = 4096")
        .replace("scratch_mb = 256", "scratch_mb = 2048")
        .replace("max_file_mb = 256", "max_file_mb = 1024");
    TestServer::start_with(&(base_config("", "") + &build))
}

fn upload(server: &TestServer, file: &Path) {
    let output = server.twine_upload(&[file]);
    assert!(output.status.success(), "{}", text(&output));
}

fn build(server: &TestServer, project: &str, version: &str) -> serde_json::Value {
    build_to_end(server, project, version, Duration::from_secs(1800))
}

/// The served wheel of a succeeded build, unpacked into `site` for the runtime root.
fn served_wheel(server: &TestServer, build: &serde_json::Value, site: &Path) -> Vec<u8> {
    assert_eq!(build["state"], "succeeded", "{}", build["log"]);
    let filename = build["wheel"]["filename"].as_str().unwrap();
    assert!(
        filename.ends_with("-cp313-cp313-musllinux_1_2_x86_64.whl"),
        "{filename}"
    );
    let bytes = server.listed_file(build["project"].as_str().unwrap(), filename);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    archive.extract(site).unwrap();
    bytes
}

/// NEEDED entries of every ELF file in the wheel: musl's name for libc, never glibc's or a
/// C++ runtime the target lacks.
fn assert_needs_only_musl_and_itself(wheel: &[u8]) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).unwrap();
    let mut elf_files = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        for library in common::elf_needed(&bytes) {
            assert!(
                !matches!(
                    library.as_str(),
                    "libc.so" | "libc.so.6" | "libstdc++.so.6" | "libc++.so.1"
                ),
                "{name} needs {library}"
            );
        }
        elf_files.push(name);
    }
    elf_files
}

fn python_in_fresh_root(site: &Path, code: &str) -> String {
    let output =
        common::musl_root::run_in_runtime_root(site, &["/usr/local/bin/python3.13", "-c", code]);
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

fn cpp_extensions_build_and_work_in_a_fresh_root(runtime: Runtime) {
    let server = cxx_server(runtime);
    for (project, version) in [("ujson", "5.9.0"), ("msgpack", "1.0.8")] {
        upload(&server, &pypi_sdist(project, version));
    }
    // ujson's recipe pins its version tool, served by this index to the offline build.
    upload(&server, &pypi_musllinux_wheel("setuptools-scm==8.1.0"));
    let work = tempfile::tempdir().unwrap();

    let ujson = build(&server, "ujson", "5.9.0");
    let site = work.path().join("ujson");
    let wheel = served_wheel(&server, &ujson, &site);
    assert!(!assert_needs_only_musl_and_itself(&wheel).is_empty());
    python_in_fresh_root(
        &site,
        "import ujson; data = {'a': [1, 2.5, 'é', None], 'b': {'c': 10**18}}; assert ujson.loads(ujson.dumps(data)) == data; assert ujson.dumps(0.1) == '0.1'",
    );

    let msgpack = build(&server, "msgpack", "1.0.8");
    let site = work.path().join("msgpack");
    let wheel = served_wheel(&server, &msgpack, &site);
    let elf_files = assert_needs_only_musl_and_itself(&wheel);
    assert!(
        elf_files
            .iter()
            .any(|name| name.starts_with("msgpack/_cmsgpack")),
        "{elf_files:?}"
    );
    python_in_fresh_root(
        &site,
        "import msgpack, msgpack._cmsgpack as c; data = {'a': [1, 2.5, b'x', None]}; assert msgpack.Packer is c.Packer; assert msgpack.unpackb(msgpack.packb(data)) == data",
    );
}

const GCC_AND_ZIG_SETUP: &str = r#"
from setuptools import Extension, setup
setup(name="gcc-and-zig", version="1.0", packages=["gcc_and_zig"], package_dir={"": "src"},
      ext_modules=[
          Extension("gcc_and_zig._mixed", ["src/lenient.c", "src/bridge.cpp"], libraries=["sqlite3"]),
          Extension("gcc_and_zig._native", ["src/native.c"], libraries=["ffi", "ssl", "crypto"]),
      ])
"#;

/// netifaces 0.11.0's kind of C: an int where a pointer is expected, without a cast. gcc 12
/// warns (-Wint-conversion) and builds it, as Alpine's builders do; clang 15 and later (zig
/// cc) refuse it. The module's other function comes from the extension's C++ file.
const LENIENT_C: &str = r#"#define PY_SSIZE_T_CLEAN
#include <Python.h>

const char *sqlite_version(void); /* bridge.cpp */

static PyObject *lenient(PyObject *self, PyObject *unused) {
    int zero = 0;
    const char *nothing = zero;
    return PyBool_FromLong(nothing == NULL);
}

static PyObject *version(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(sqlite_version());
}

static PyMethodDef methods[] = {
    {"lenient", lenient, METH_NOARGS, NULL},
    {"sqlite_version", version, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mixed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__mixed(void) { return PyModule_Create(&module); }
"#;

/// C++ against a header of the root's /usr/local/include (zig searches no such directory by
/// itself), with libc++ (std::string, a guarded static).
const BRIDGE_CPP: &str = r#"#include <sqlite3.h>
#include <string>

extern "C" const char *sqlite_version() {
    static const std::string version(sqlite3_libversion());
    return version.c_str();
}
"#;

/// C against libffi's and OpenSSL's headers in /usr/local/include (where cffi and uWSGI look).
const NATIVE_C: &str = r#"#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <ffi.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

static PyObject *ffi_ok(PyObject *self, PyObject *unused) {
    ffi_cif cif;
    return PyBool_FromLong(ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 0, &ffi_type_void, NULL) == FFI_OK);
}

static PyObject *openssl(PyObject *self, PyObject *unused) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) return PyErr_Format(PyExc_RuntimeError, "SSL_CTX_new failed");
    SSL_CTX_free(context);
    return PyUnicode_FromString(OpenSSL_version(OPENSSL_VERSION));
}

static PyMethodDef methods[] = {
    {"ffi_ok", ffi_ok, METH_NOARGS, NULL},
    {"openssl", openssl, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"#;

/// The contents of an ELF file's .comment section: each compiler that built one of its
/// objects leaves its name there (gcc "GCC: (Debian 12...)", zig's clang "clang version ...").
fn elf_comment(elf: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), elf).unwrap();
    let output = std::process::Command::new("readelf")
        .args(["-p", ".comment"])
        .arg(file.path())
        .output()
        .expect("readelf (binutils)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The first file of the wheel whose name starts with `prefix`.
fn wheel_member(wheel: &[u8], prefix: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel)).unwrap();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        if entry.name().unwrap().starts_with(prefix) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("no {prefix}* in the wheel")
}

/// Tried: an sdist whose C code only gcc accepts, an extension of C and C++ together, and C
/// against libffi's and OpenSSL's headers, built on the C++ layer. Kept: one wheel, its C
/// compiled by gcc (the root's compiler, as on Alpine), its C++ by zig, linked by zig's C++
/// driver where C++ is in it, with libffi, OpenSSL and SQLite vendored; it works in the plain
/// runtime root.
fn c_builds_with_gcc_beside_cpp_with_zig(runtime: Runtime) {
    let server = cxx_server(runtime);
    let work = tempfile::tempdir().unwrap();
    let sdist = write_project_sdist(
        work.path(),
        "gcc-and-zig",
        "1.0",
        GCC_AND_ZIG_SETUP,
        &[
            ("src/gcc_and_zig/__init__.py", ""),
            ("src/lenient.c", LENIENT_C),
            ("src/bridge.cpp", BRIDGE_CPP),
            ("src/native.c", NATIVE_C),
        ],
    );
    upload(&server, &sdist);
    let build = build(&server, "gcc-and-zig", "1.0");
    let site = work.path().join("site");
    let wheel = served_wheel(&server, &build, &site);
    let elf_files = assert_needs_only_musl_and_itself(&wheel);
    for library in ["libffi", "libssl", "libcrypto", "libsqlite3"] {
        assert!(
            elf_files
                .iter()
                .any(|name| name.starts_with("gcc_and_zig.libs/") && name.contains(library)),
            "{library} is not vendored: {elf_files:?}"
        );
    }
    let mixed = elf_comment(&wheel_member(&wheel, "gcc_and_zig/_mixed."));
    assert!(
        mixed.contains("GCC: (") && mixed.contains("clang version"),
        "lenient.c by gcc, bridge.cpp by zig's clang: {mixed}"
    );
    let native = elf_comment(&wheel_member(&wheel, "gcc_and_zig/_native."));
    assert!(
        native.contains("GCC: (") && !native.contains("clang"),
        "native.c by gcc only: {native}"
    );
    let said = python_in_fresh_root(
        &site,
        "import sqlite3
from gcc_and_zig import _mixed, _native
assert _mixed.lenient() is True
assert _mixed.sqlite_version() == sqlite3.sqlite_version, _mixed.sqlite_version()
assert _native.ffi_ok() is True
print(_native.openssl())",
    );
    assert!(said.starts_with("OpenSSL 3.0."), "{said}");
}

/// GeoTIFF, GeoJSON, Shapefile and a CRS transform, with no proj.db and no environment.
const GDAL_EXERCISE: &str = r#"
import os
for name in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA"):
    assert name not in os.environ, name
from osgeo import gdal, ogr, osr
gdal.UseExceptions()
drv = gdal.GetDriverByName("GTiff")
ds = drv.Create("/tmp/work/t.tif", 4, 3, 1, gdal.GDT_Byte)
ds.SetGeoTransform((2.0, 0.5, 0, 49.0, 0, -0.5))
srs = osr.SpatialReference(); srs.ImportFromEPSG(4326)
ds.SetProjection(srs.ExportToWkt())
ds.GetRasterBand(1).WriteRaster(0, 0, 4, 3, bytes(range(12)))
ds = None
ds = gdal.Open("/tmp/work/t.tif")
assert (ds.RasterXSize, ds.RasterYSize) == (4, 3)
assert ds.GetRasterBand(1).ReadRaster(0, 0, 4, 3) == bytes(range(12))
assert "WGS 84" in ds.GetProjection()
ds = None
with open("/tmp/work/p.geojson", "w") as f:
    f.write('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "Paris"}, "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}}]}')
src = ogr.Open("/tmp/work/p.geojson")
feature = src.GetLayer(0).GetNextFeature()
assert feature.GetField("name") == "Paris"
shp = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource("/tmp/work/p.shp")
layer = shp.CreateLayer("p", srs, ogr.wkbPoint)
layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
out = ogr.Feature(layer.GetLayerDefn()); out.SetField("name", "Paris")
out.SetGeometry(ogr.CreateGeometryFromWkt("POINT (2.35 48.85)"))
assert layer.CreateFeature(out) == 0
out = layer = shp = None

reopened = ogr.Open("/tmp/work/p.shp")
assert reopened.GetLayer(0).GetFeatureCount() == 1
back = reopened.GetLayer(0).GetNextFeature()
assert back.GetField("name") == "Paris" and back.GetGeometryRef().GetX() == 2.35
source = osr.SpatialReference(); assert source.ImportFromEPSG(4326) == 0
source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
target = osr.SpatialReference(); assert target.ImportFromEPSG(3857) == 0
x, y, _ = osr.CoordinateTransformation(source, target).TransformPoint(2.35, 48.85)
assert abs(x - 261600.80) < 0.01 and abs(y - 6249447.75) < 0.01, (x, y)
print("gdal", gdal.__version__, round(x, 2), round(y, 2))
"#;

fn gdal_bindings_vendor_libgdal_and_work_with_no_environment(runtime: Runtime) {
    let server = cxx_server(runtime);
    // The recipe's pinned build requirement, served by this index to the offline build.
    upload(&server, &pypi_musllinux_wheel("numpy==2.2.6"));
    upload(
        &server,
        &pypi_file("gdal", &format!("GDAL-{LAYER_GDAL}.tar.gz")),
    );
    let build = build(&server, "GDAL", LAYER_GDAL);
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    let wheel = served_wheel(&server, &build, &site);
    let elf_files = assert_needs_only_musl_and_itself(&wheel);
    for library in ["libgdal", "libproj", "libsqlite3"] {
        assert!(
            elf_files
                .iter()
                .any(|name| name.starts_with("gdal.libs/") && name.contains(library)),
            "{library} is not vendored: {elf_files:?}"
        );
    }
    assert!(site.join("osgeo/proj_data/proj.db").is_file());
    assert!(site.join("osgeo/gdal_data").is_dir());
    let said = python_in_fresh_root(&site, GDAL_EXERCISE);
    assert!(said.contains("261600.8 6249447.75"), "{said}");
    eprintln!(
        "GDAL {LAYER_GDAL} wheel: {} bytes, {} ELF files",
        wheel.len(),
        elf_files.len()
    );
}

/// Tried: the bindings of another GDAL release than the builder's libgdal. Kept: nothing;
/// the build fails before pip runs, naming both versions.
fn gdal_for_another_libgdal_fails_at_once_naming_both_versions(runtime: Runtime) {
    let server = cxx_server(runtime);
    upload(&server, &pypi_musllinux_wheel("numpy==2.2.6"));
    upload(&server, &pypi_file("gdal", "GDAL-3.6.1.tar.gz"));
    let build = build(&server, "GDAL", "3.6.1");
    assert_eq!(build["state"], "failed", "{}", build["log"]);
    let log = build["log"].as_str().unwrap();
    assert!(
        log.contains(&format!(
            "gdal 3.6.1 must be built against the same library version, but this builder has {LAYER_GDAL}"
        )),
        "{log}"
    );
    assert!(!log.contains("Building wheel"), "pip ran: {log}");
    assert!(server.listed_wheels("gdal").is_empty());
}

/// pygdal's versions extend libgdal's (3.6.2.11 for 3.6.2); its wheel carries the data too.
#[test]
fn pygdal_builds_against_the_libgdal_its_version_extends() {
    let server = cxx_server(Runtime::Runc);
    upload(&server, &pypi_musllinux_wheel("numpy==2.2.6"));
    upload(&server, &pypi_file("pygdal", "pygdal-3.6.2.11.tar.gz"));
    let build = build(&server, "pygdal", "3.6.2.11");
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    let wheel = served_wheel(&server, &build, &site);
    assert_needs_only_musl_and_itself(&wheel);
    assert!(site.join("osgeo/proj_data/proj.db").is_file());
    python_in_fresh_root(
        &site,
        "from osgeo import osr; s = osr.SpatialReference(); assert s.ImportFromEPSG(3857) == 0; assert 'Pseudo-Mercator' in s.ExportToWkt()",
    );
}

macro_rules! cxx_matrix {
    ($($test:ident),* $(,)?) => {
        mod runc {
            $(#[test] fn $test() { super::$test(super::Runtime::Runc) })*
        }
        mod docker {
            $(#[test] fn $test() { if super::Runtime::Docker.available() { super::$test(super::Runtime::Docker) } })*
        }
    };
}

cxx_matrix!(
    cpp_extensions_build_and_work_in_a_fresh_root,
    c_builds_with_gcc_beside_cpp_with_zig,
    gdal_bindings_vendor_libgdal_and_work_with_no_environment,
    gdal_for_another_libgdal_fails_at_once_naming_both_versions,
);
