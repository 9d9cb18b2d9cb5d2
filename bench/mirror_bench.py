#!/usr/bin/env python3
"""The Python half of bench/mirror.sh: writes the upstream tree, times downloads and page
requests over one keep-alive connection, and turns the timings into a Markdown table.

  mirror_bench.py tree ROOT FILES MIN_BYTES MAX_BYTES PAGE_PROJECTS
  mirror_bench.py urls BASE PROJECT                   > urls.txt  ("url sha256 size" lines)
  mirror_bench.py download URLS LABEL [quickack]      >> results.jsonl
  mirror_bench.py pages BASE LABEL REPEAT PROJECT...  >> results.jsonl
  mirror_bench.py wrk LABEL CONNECTIONS WRK_OUTPUT    >> results.jsonl
  mirror_bench.py report results.jsonl                > table.md

The tree holds project `mirrorbench` with FILES wheels whose sizes are spread evenly from
MIN_BYTES to MAX_BYTES (random, incompressible payload stored uncompressed), and
PAGE_PROJECTS projects `pagebench-NNN` whose pages have the same shape (FILES entries)
but whose files are never downloaded, so each can be a first fetch.
"""

import base64
import hashlib
import http.client
import io
import json
import os
import socket
import statistics
import sys
import time
import urllib.parse
import zipfile

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TAG = "py3-none-any"
UPLOAD_TIME = "2025-06-01T12:00:00.000000Z"
READ_CHUNK = 1 << 20
# About one loopback segment, so each read is about one recv and is acknowledged at once.
QUICKACK_CHUNK = 64 << 10


# --- the upstream tree -------------------------------------------------------------------


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_bytes(name, version, payload_size):
    """A valid pure-Python wheel with METADATA, WHEEL, RECORD and a random payload."""
    module = name.replace("-", "_")
    prefix = f"{module}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: edelweiss mirror benchmark fixture\nRequires-Python: >=3.8\n"
    ).encode()
    wheel = f"Wheel-Version: 1.0\nGenerator: edelweiss-bench\nRoot-Is-Purelib: true\nTag: {TAG}\n"
    entries = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{module}/payload.bin": os.urandom(payload_size),
        f"{prefix}/METADATA": metadata,
        f"{prefix}/WHEEL": wheel.encode(),
    }
    lines = [record_line(path, data) for path, data in entries.items()]
    entries[f"{prefix}/RECORD"] = ("\n".join(lines + [f"{prefix}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return buffer.getvalue(), metadata


def file_entry(filename, sha256, size, metadata_sha256):
    return {
        "filename": filename,
        "url": f"../../files/{filename}",
        "hashes": {"sha256": sha256},
        "requires-python": ">=3.8",
        "core-metadata": {"sha256": metadata_sha256},
        "size": size,
        "upload-time": UPLOAD_TIME,
        "yanked": False,
    }


def write_page(root, name, versions, entries):
    directory = os.path.join(root, "simple", name)
    os.makedirs(directory, exist_ok=True)
    page = {"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": entries}
    with open(os.path.join(directory, "index.json"), "w") as handle:
        json.dump(page, handle)
    anchors = "".join(
        f'<a href="{e["url"]}#sha256={e["hashes"]["sha256"]}" data-requires-python="&gt;=3.8" '
        f'data-dist-info-metadata="sha256={e["core-metadata"]["sha256"]}">{e["filename"]}</a><br/>\n'
        for e in entries
    )
    with open(os.path.join(directory, "index.html"), "w") as handle:
        handle.write(
            f"<!DOCTYPE html>\n<html><head><title>Links for {name}</title></head><body>\n"
            f"<h1>Links for {name}</h1>\n{anchors}</body></html>\n"
        )


def tree(root, files, min_bytes, max_bytes, page_projects):
    files_dir = os.path.join(root, "files")
    os.makedirs(files_dir, exist_ok=True)
    name, entries, versions = "mirrorbench", [], []
    for index in range(files):
        version = f"1.0.{index}"
        payload = min_bytes + (max_bytes - min_bytes) * index // max(files - 1, 1)
        data, metadata = wheel_bytes(name, version, payload)
        filename = f"{name}-{version}-{TAG}.whl"
        with open(os.path.join(files_dir, filename), "wb") as handle:
            handle.write(data)
        with open(os.path.join(files_dir, filename + ".metadata"), "wb") as handle:
            handle.write(metadata)
        sha = hashlib.sha256(data).hexdigest()
        entries.append(file_entry(filename, sha, len(data), hashlib.sha256(metadata).hexdigest()))
        versions.append(version)
    write_page(root, name, versions, entries)
    for number in range(page_projects):
        project = f"pagebench-{number:03d}"
        module = project.replace("-", "_")
        page_entries = []
        for index in range(files):
            filename = f"{module}-1.0.{index}-{TAG}.whl"
            fake = hashlib.sha256(filename.encode()).hexdigest()
            page_entries.append(file_entry(filename, fake, 3 << 20, hashlib.sha256(fake.encode()).hexdigest()))
        write_page(root, project, versions, page_entries)
    total = sum(entry["size"] for entry in entries)
    print(f"{files} wheels, {total / 1e6:.1f} MB; {page_projects} page-only projects", file=sys.stderr)


# --- the client --------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it. With `quickack`
    the client acknowledges every read at once (TCP_QUICKACK) instead of delaying its ACK,
    which tells a server-side Nagle stall apart from a slow server."""

    def __init__(self, base, quickack=False):
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.quickack = quickack
        self.connection = None

    def ack_now(self):
        if self.quickack and self.connection.sock is not None:
            self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def get(self, path, headers=None, sink=None):
        """Status and body (None when `sink` consumes it chunk by chunk)."""
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.connection.request("GET", path, headers=headers or {})
                self.ack_now()
                response = self.connection.getresponse()
                if sink is None:
                    return response.status, response.read()
                chunk_size = QUICKACK_CHUNK if self.quickack else READ_CHUNK
                while True:
                    self.ack_now()
                    chunk = response.read1(chunk_size)
                    if not chunk:
                        # read1 leaves a finished response open; close it to reuse the connection.
                        response.close()
                        return response.status, None
                    sink(chunk)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def urls(base, project):
    page_url = urllib.parse.urljoin(base, f"/simple/{project}/")
    status, body = Connection(base).get(urllib.parse.urlsplit(page_url).path, {"Accept": JSON_TYPE})
    if status != 200:
        sys.exit(f"{page_url}: HTTP {status}")
    for entry in json.loads(body)["files"]:
        print(urllib.parse.urljoin(page_url, entry["url"]), entry["hashes"]["sha256"], entry["size"])


def download(urls_file, label, quickack=""):
    """Downloads every URL in turn; only the transfer is timed, the check comes after. Each
    file's longest pause between two reads shows where a body waits: for the last chunk of
    a first download (held back until the file is verified and stored), or for an ACK."""
    with open(urls_file) as handle:
        wanted = [line.split() for line in handle if line.strip()]
    connection = Connection(wanted[0][0], quickack == "quickack")
    seconds, pauses, total_bytes = [], [], 0
    for url, sha256, size in wanted:
        parts, arrivals = [], []

        def sink(chunk):
            arrivals.append(time.perf_counter())
            parts.append(chunk)

        start = time.perf_counter()
        status, _ = connection.get(urllib.parse.urlsplit(url).path, sink=sink)
        seconds.append(time.perf_counter() - start)
        pauses.append(max((later - earlier for earlier, later in zip(arrivals, arrivals[1:])), default=0.0))
        data = b"".join(parts)
        if status != 200 or len(data) != int(size) or hashlib.sha256(data).hexdigest() != sha256:
            sys.exit(f"{label}: {url}: HTTP {status}, {len(data)} bytes, wrong body")
        total_bytes += len(data)
    print(json.dumps({"kind": "download", "label": label, "seconds": seconds, "pauses": pauses, "bytes": total_bytes}))


def pages(base, label, repeat, projects):
    """GETs each project's JSON page `repeat` times, one request at a time."""
    connection = Connection(base)
    seconds = []
    for _ in range(repeat):
        for project in projects:
            start = time.perf_counter()
            status, _ = connection.get(f"/simple/{project}/", {"Accept": JSON_TYPE})
            seconds.append(time.perf_counter() - start)
            if status != 200:
                sys.exit(f"{label}: /simple/{project}/: HTTP {status}")
    print(json.dumps({"kind": "pages", "label": label, "seconds": seconds}))


def wrk_summary(label, connections, output_file):
    """The requests/s and latency percentiles of `wrk --latency` output, in milliseconds."""
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    row = {"kind": "wrk", "label": label, "connections": int(connections)}
    with open(output_file) as handle:
        for line in handle:
            fields = line.split()
            if line.startswith("Requests/sec:"):
                row["rps"] = float(fields[1])
            elif len(fields) == 2 and fields[0] in ("50%", "99%"):
                value = fields[1]
                unit = next(unit for unit in ("us", "ms", "s") if value.endswith(unit))
                row[{"50%": "p50", "99%": "p99"}[fields[0]]] = round(float(value[: -len(unit)]) * units[unit], 2)
            elif "Non-2xx" in line or "Socket errors" in line:
                sys.exit(f"{label}: wrk reported: {line.strip()}")
    print(json.dumps(row))


# --- the report --------------------------------------------------------------------------


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(results_file):
    with open(results_file) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    downloads = {}
    for row in (row for row in rows if row["kind"] == "download"):
        downloads.setdefault(row["label"], []).append(row)
    print(
        "| download (sequential, one keep-alive connection) | rounds | total s (median) | MB/s "
        "| per file ms: median / p90 / max | files over 35 ms | longest pause in a body, ms: median |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, runs in downloads.items():
        totals = [sum(run["seconds"]) for run in runs]
        middle = sorted(runs, key=lambda run: sum(run["seconds"]))[len(runs) // 2]
        files = [second for run in runs for second in run["seconds"]]
        rate = middle["bytes"] / sum(middle["seconds"]) / 1e6
        slow = sum(second > 0.035 for second in files)
        pause = statistics.median(pause for run in runs for pause in run["pauses"])
        print(
            f"| {label} | {len(runs)} | {statistics.median(totals):.3f} | {rate:.0f} | "
            f"{statistics.median(files) * 1e3:.1f} / {percentile(files, 0.90) * 1e3:.1f} / "
            f"{max(files) * 1e3:.1f} | {slow} of {len(files)} | {pause * 1e3:.1f} |"
        )
    print()
    print("| JSON page request (one at a time, keep-alive) | requests | median ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in (row for row in rows if row["kind"] == "pages"):
        values = row["seconds"]
        print(
            f"| {row['label']} | {len(values)} | {statistics.median(values) * 1e3:.2f} | "
            f"{percentile(values, 0.90) * 1e3:.2f} | {percentile(values, 0.99) * 1e3:.2f} | {max(values) * 1e3:.2f} |"
        )
    wrk_rows = [row for row in rows if row["kind"] == "wrk"]
    if wrk_rows:
        print()
        print("| JSON page, wrk | connections | requests/s | median ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for row in wrk_rows:
            print(f"| {row['label']} | {row['connections']} | {row['rps']:.0f} | {row['p50']} | {row['p99']} |")


def main():
    command, arguments = sys.argv[1], sys.argv[2:]
    if command == "tree":
        root, files, min_bytes, max_bytes, page_projects = arguments
        tree(root, int(files), int(min_bytes), int(max_bytes), int(page_projects))
    elif command == "urls":
        urls(*arguments)
    elif command == "download":
        download(*arguments)
    elif command == "pages":
        pages(arguments[0], arguments[1], int(arguments[2]), arguments[3:])
    elif command == "wrk":
        wrk_summary(*arguments)
    elif command == "report":
        report(*arguments)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
