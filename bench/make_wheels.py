#!/usr/bin/env python3
"""Writes the wheels bench/index.sh serves: COUNT small wheels of one project
(`benchproj-1.0.N-py3-none-any.whl`) and one large wheel of another project
(`benchbig-1.0.0-py3-none-any.whl`) whose payload is BIG_BYTES of random, incompressible
bytes, stored uncompressed so the file is about that size.

Usage: make_wheels.py OUT_DIR COUNT BIG_BYTES
"""

import base64
import hashlib
import os
import sys
import zipfile

TAG = "py3-none-any"
RANDOM_BLOCK = 8 << 20


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def dist_info(name: str, version: str, payload_files: dict) -> dict:
    """The .dist-info entries (METADATA, WHEEL, RECORD) for a pure-Python wheel."""
    prefix = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: edelweiss benchmark fixture\nRequires-Python: >=3.8\n"
    wheel = f"Wheel-Version: 1.0\nGenerator: edelweiss-bench\nRoot-Is-Purelib: true\nTag: {TAG}\n"
    entries = {f"{prefix}/METADATA": metadata.encode(), f"{prefix}/WHEEL": wheel.encode()}
    lines = [record_line(path, data) for path, data in {**payload_files, **entries}.items()]
    lines.append(f"{prefix}/RECORD,,")
    entries[f"{prefix}/RECORD"] = ("\n".join(lines) + "\n").encode()
    return entries


def write_small(out_dir: str, name: str, version: str) -> None:
    payload = {f"{name}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    path = os.path.join(out_dir, f"{name}-{version}-{TAG}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in {**payload, **dist_info(name, version, payload)}.items():
            archive.writestr(entry, data)


def write_big(out_dir: str, name: str, version: str, size: int) -> None:
    """Streams the random payload into the zip; RECORD gets its real hash."""
    path = os.path.join(out_dir, f"{name}-{version}-{TAG}.whl")
    payload_path = f"{name}/payload.bin"
    hasher = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(f"{name}/__init__.py", b"")
        info = zipfile.ZipInfo(payload_path, date_time=(2024, 1, 1, 0, 0, 0))
        with archive.open(info, "w", force_zip64=True) as entry:
            remaining = size
            while remaining:
                block = os.urandom(min(RANDOM_BLOCK, remaining))
                hasher.update(block)
                entry.write(block)
                remaining -= len(block)
        digest = base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode()
        prefix = f"{name}-{version}.dist-info"
        entries = dist_info(name, version, {f"{name}/__init__.py": b""})
        record = entries[f"{prefix}/RECORD"].decode().replace(
            f"{prefix}/RECORD,,", f"{payload_path},sha256={digest},{size}\n{prefix}/RECORD,,"
        )
        entries[f"{prefix}/RECORD"] = record.encode()
        for entry_path, data in entries.items():
            archive.writestr(entry_path, data)


def main() -> None:
    out_dir, count, big_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(out_dir, exist_ok=True)
    for number in range(count):
        write_small(out_dir, "benchproj", f"1.0.{number}")
    write_big(out_dir, "benchbig", "1.0.0", big_bytes)


if __name__ == "__main__":
    main()
