"""Ships data directories of the builder inside a repaired wheel (inside the builder container).

    python3 bundle_data.py WHEEL

EDELWEISS_BUNDLE_DATA is a JSON list of {"path", "source", "env"}: the directory printed by
the shell command `source` is copied to `path` in the wheel (e.g. `osgeo/proj_data`), and the
package that `path` starts in sets the environment variable `env` to it on import unless the
environment already names one. Libraries such as PROJ and GDAL then find their data on an
image that has none installed. The wheel is rewritten in place with a new RECORD.
"""

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile

MARK = "# edelweiss: data directories shipped in this wheel"


def record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def zip_time():
    import time

    seconds = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)
    return time.gmtime(seconds)[:6]


def source_dir(command):
    found = subprocess.run(["/bin/sh", "-c", command], check=True, capture_output=True, text=True)
    path = found.stdout.strip()
    if not path or not os.path.isdir(path):
        sys.exit(f"edelweiss: bundle_data: `{command}` gave {path!r}, not a directory")
    return path


def init_prelude(entries):
    lines = [MARK, "import os as _edelweiss_os", "_edelweiss_here = _edelweiss_os.path.dirname(_edelweiss_os.path.abspath(__file__))"]
    for entry in entries:
        relative = entry["path"].split("/", 1)[1]
        lines.append(
            f"_edelweiss_os.environ.setdefault({entry['env']!r}, _edelweiss_os.path.join(_edelweiss_here, *{relative.split('/')!r}))"
        )
    lines.append("del _edelweiss_os, _edelweiss_here")
    return "\n".join(lines) + "\n"


def with_prelude(source, prelude):
    """`prelude` after the module's docstring and `from __future__` imports, which must stay first."""
    tree = ast.parse(source)
    insert_at = 0
    for index, node in enumerate(tree.body):
        is_docstring = index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if not (is_docstring or is_future):
            break
        insert_at = node.end_lineno
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines[:insert_at]) + prelude + "".join(lines[insert_at:])


def main():
    wheel = sys.argv[1]
    entries = json.loads(os.environ["EDELWEISS_BUNDLE_DATA"])
    with zipfile.ZipFile(wheel) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        members = {info.filename: archive.read(info) for info in infos}
        modes = {info.filename: info.external_attr for info in infos}
    record_name = next(name for name in members if name.endswith(".dist-info/RECORD"))
    packages = {}
    for entry in entries:
        package = entry["path"].split("/", 1)[0]
        packages.setdefault(package, []).append(entry)
        root = source_dir(entry["source"])
        copied = 0
        for directory, _, files in os.walk(root):
            for file in sorted(files):
                full = os.path.join(directory, file)
                name = entry["path"] + "/" + os.path.relpath(full, root)
                with open(full, "rb") as handle:
                    members[name] = handle.read()
                copied += 1
        print(f"edelweiss: bundled {copied} files of {root} as {entry['path']} ({entry['env']})")
    for package, package_entries in packages.items():
        init = f"{package}/__init__.py"
        if init not in members:
            sys.exit(f"edelweiss: bundle_data: the wheel has no {init} to set {package_entries[0]['env']} in")
        source = members[init].decode()
        if MARK not in source:
            members[init] = with_prelude(source, init_prelude(package_entries)).encode()
    del members[record_name]
    record = [f"{name},{record_hash(data)},{len(data)}" for name, data in sorted(members.items())]
    record.append(f"{record_name},,")
    members[record_name] = ("\n".join(record) + "\n").encode()
    temporary = wheel + ".tmp"
    stamp = zip_time()
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        # Metadata last, RECORD last of all, as wheel builders write them.
        def order(name):
            return (name.split("/", 1)[0].endswith(".dist-info"), name == record_name, name)

        for name in sorted(members, key=order):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = modes.get(name, 0o644 << 16)
            archive.writestr(info, members[name])
    os.replace(temporary, wheel)


if __name__ == "__main__":
    main()
