#!/usr/bin/env python3
"""The Python half of bench/pages.sh: writes upstream pages, times page requests as pip and
uv make them, uploads a file and times the first page request after it, and turns the
results into Markdown tables.

  pages_bench.py tree ROOT PROJECT FILES            upstream JSON + HTML page of FILES entries
  pages_bench.py latency BASE PATH LABEL REPEAT CODING         >> results.jsonl
  pages_bench.py after_write BASE TOKEN PROJECT ROUNDS LABEL   >> results.jsonl
  pages_bench.py root ROOT PROJECT...                         upstream root page (JSON + HTML)
  pages_bench.py check URL FILES CODING                       a page lists FILES files, or exit 1
  pages_bench.py wrk LABEL WRK_OUTPUT [TABLE [VERSUS]]         >> results.jsonl
  pages_bench.py compile LABEL VERSUS RUNS...                  >> results.jsonl (RUNS: wall/cpu s)
  pages_bench.py memory PID LABEL                              >> results.jsonl
  pages_bench.py report results.jsonl                          > tables.md

CODING is the client whose headers a request carries: `identity` (no Accept-Encoding),
`pip` (Accept-Encoding: gzip, deflate) or `uv` (gzip, deflate, zstd). Every body is
checked: status 200, and a JSON page (decoded when compressed; zstd by the `zstd` CLI)
that parses. `check` takes an HTML page too (the other index servers answer pip's Accept
with HTML) and counts its wheel links.

wrk rows are grouped into tables by TABLE, each compared with its own first row and, where
VERSUS names another row of the table, with that row (nginx serving the same bytes).
"""

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
import zipfile

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
ENCODINGS = {"identity": None, "pip": "gzip, deflate", "uv": "gzip, deflate, zstd"}
UPLOAD_TIME = "2025-06-01T12:00:00.000000Z"


# --- the upstream tree -------------------------------------------------------------------


def tree(root, project, files):
    """A page of FILES wheels of PROJECT whose files are never fetched (fake digests)."""
    module = project.replace("-", "_")
    entries, versions = [], []
    for number in range(files):
        version = f"1.{number // 1000}.{number % 1000}"
        filename = f"{module}-{version}-py3-none-any.whl"
        digest = hashlib.sha256(filename.encode()).hexdigest()
        entries.append(
            {
                "filename": filename,
                "url": f"../../files/{filename}",
                "hashes": {"sha256": digest},
                "requires-python": ">=3.8",
                "core-metadata": {"sha256": hashlib.sha256(digest.encode()).hexdigest()},
                "size": 3 << 20,
                "upload-time": UPLOAD_TIME,
                "yanked": False,
            }
        )
        versions.append(version)
    directory = os.path.join(root, "simple", project)
    os.makedirs(directory, exist_ok=True)
    page = {"meta": {"api-version": "1.1"}, "name": project, "versions": versions, "files": entries}
    with open(os.path.join(directory, "index.json"), "w") as handle:
        json.dump(page, handle)
    anchors = "".join(
        f'<a href="{e["url"]}#sha256={e["hashes"]["sha256"]}" data-requires-python="&gt;=3.8" '
        f'data-dist-info-metadata="sha256={e["core-metadata"]["sha256"]}">{e["filename"]}</a><br/>\n'
        for e in entries
    )
    with open(os.path.join(directory, "index.html"), "w") as handle:
        handle.write(
            f"<!DOCTYPE html>\n<html><head><title>Links for {project}</title></head><body>\n"
            f"<h1>Links for {project}</h1>\n{anchors}</body></html>\n"
        )


def root(root_dir, *projects):
    """The upstream's /simple/ page, for mirrors that read it (devpi-server)."""
    directory = os.path.join(root_dir, "simple")
    os.makedirs(directory, exist_ok=True)
    page = {"meta": {"api-version": "1.1"}, "projects": [{"name": name} for name in projects]}
    with open(os.path.join(directory, "index.json"), "w") as handle:
        json.dump(page, handle)
    anchors = "".join(f'<a href="{name}/">{name}</a><br/>\n' for name in projects)
    with open(os.path.join(directory, "index.html"), "w") as handle:
        handle.write(f"<!DOCTYPE html>\n<html><body>\n{anchors}</body></html>\n")


# --- the client --------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened if the server closes it."""

    def __init__(self, base):
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.connection = None

    def request(self, method, path, headers=None, body=None):
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def page_headers(coding):
    headers = {"Accept": PIP_ACCEPT}
    if ENCODINGS[coding]:
        headers["Accept-Encoding"] = ENCODINGS[coding]
    return headers


def decode(headers, body):
    encoding = {key.lower(): value for key, value in headers.items()}.get("content-encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return subprocess.run(["zstd", "-dc"], input=body, capture_output=True, check=True).stdout
    if encoding:
        sys.exit(f"unexpected Content-Encoding {encoding}")
    return body


def timed_get(connection, path, coding):
    """(seconds, bytes on the wire, Content-Encoding, decoded JSON page)."""
    start = time.perf_counter()
    status, headers, body = connection.request("GET", path, page_headers(coding))
    seconds = time.perf_counter() - start
    if status != 200:
        sys.exit(f"{path}: HTTP {status}: {body[:200]!r}")
    lowered = {key.lower(): value for key, value in headers.items()}
    page = json.loads(decode(headers, body))
    return seconds, len(body), lowered.get("content-encoding", "identity"), page


def check(url, files, coding):
    """Exits 1 unless URL answers pip's request with a page (JSON or HTML) of FILES wheels;
    prints what was sent: content type, coding and bytes."""
    parsed = urllib.parse.urlsplit(url)
    connection = Connection(f"{parsed.scheme}://{parsed.netloc}")
    status, headers, body = connection.request("GET", parsed.path, page_headers(coding))
    if status != 200:
        sys.exit(f"{url}: HTTP {status}: {body[:200]!r}")
    lowered = {key.lower(): value for key, value in headers.items()}
    text = decode(headers, body)
    content_type = lowered.get("content-type", "")
    if "json" in content_type:
        found = len(json.loads(text)["files"])
    else:
        found = len(set(re.findall(rb'href="[^"#]*?([^/"#]+\.whl)', text)))
    if found != int(files):
        sys.exit(f"{url}: {found} wheels on the page, not {files}")
    kind = "JSON" if "json" in content_type else "HTML"
    print(f"{kind}, {lowered.get('content-encoding', 'identity')}")


def latency(base, path, label, repeat, coding):
    connection = Connection(base)
    seconds, sizes, codings = [], [], set()
    files = 0
    for _ in range(int(repeat)):
        elapsed, size, encoding, page = timed_get(connection, path, coding)
        seconds.append(elapsed)
        sizes.append(size)
        codings.add(encoding)
        files = len(page["files"])
    print(json.dumps({"kind": "latency", "label": label, "coding": coding, "sent": sorted(codings),
                      "seconds": seconds, "bytes": statistics.median(sizes), "files": files}))


def wheel_bytes(name, version):
    module = name.replace("-", "_")
    prefix = f"{module}-{version}.dist-info"
    entries = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{prefix}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{prefix}/WHEEL": b"Wheel-Version: 1.0\nGenerator: edelweiss-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    lines = []
    for path, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(data)}")
    entries[f"{prefix}/RECORD"] = ("\n".join(lines + [f"{prefix}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue()


def upload(connection, token, name, version):
    filename, data = wheel_bytes(name, version)
    boundary = "edelweissbenchboundary"
    fields = {":action": "file_upload", "protocol_version": "1", "name": name, "version": version,
              "sha256_digest": hashlib.sha256(data).hexdigest()}
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    status, _, answer = connection.request(
        "POST", "/legacy/", {"Authorization": f"Basic {auth}",
                             "Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
    if status != 200:
        sys.exit(f"upload of {filename}: HTTP {status}: {answer[:300]!r}")
    return filename


def after_write(base, token, project, rounds, label):
    """Each round uploads a new wheel of PROJECT, then times the first page request as pip
    makes it and the first as uv makes it; both must list the new file."""
    connection = Connection(base)
    path = f"/simple/{project}/"
    timed_get(connection, path, "pip")
    timed_get(connection, path, "uv")
    first = {"pip": [], "uv": []}
    for number in range(int(rounds)):
        filename = upload(connection, token, project, f"9.0.{number}")
        for coding in ("pip", "uv"):
            elapsed, _, _, page = timed_get(connection, path, coding)
            if not any(entry["filename"] == filename for entry in page["files"]):
                sys.exit(f"{label}: {filename} is not on {path} right after its upload")
            first[coding].append(elapsed)
    for coding, seconds in first.items():
        print(json.dumps({"kind": "latency", "label": f"{label}, first request after an upload",
                          "coding": coding, "sent": [], "seconds": seconds, "bytes": 0, "files": 0}))


def wrk_summary(label, output_file, table="", versus=""):
    values = {}
    with open(output_file) as handle:
        for line in handle:
            if "=" in line and line[0].isalpha():
                key, value = line.strip().split("=", 1)
                values[key] = value
    seconds = int(values["duration_us"]) / 1e6
    errors = sum(int(values[key]) for key in values if key.startswith("errors_"))
    if errors:
        sys.exit(f"{label}: wrk reported {errors} errors: {values}")
    print(json.dumps({"kind": "wrk", "label": label, "table": table, "versus": versus,
                      "rps": int(values["requests"]) / seconds,
                      "p50": int(values["p50_us"]) / 1000, "p99": int(values["p99_us"]) / 1000,
                      "bytes_per_request": int(values["bytes"]) / max(int(values["requests"]), 1)}))


def compile_times(label, versus, *runs):
    """Each run as WALL/CPU seconds (CPU: uv's own user + system time); VERSUS names the row
    to compare with, or is empty."""
    wall, cpu = zip(*((float(part) for part in run.split("/")) for run in runs))
    print(json.dumps({"kind": "compile", "label": label, "versus": versus, "seconds": wall, "cpu": cpu}))


def memory(pid, label):
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    print(json.dumps({"kind": "memory", "label": label, **fields}))


# --- the report --------------------------------------------------------------------------


def report(results_file):
    with open(results_file) as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    tables = {}
    for row in (row for row in rows if row["kind"] == "wrk"):
        tables.setdefault(row.get("table", ""), {}).setdefault(row["label"], []).append(row)
    for table, wrk in tables.items():
        rps = {label: statistics.median(r["rps"] for r in runs) for label, runs in wrk.items()}
        baseline = next(iter(rps.values()))
        if table:
            print(f"{table}:\n")
        print("| page, `wrk -t1 -c32` | requests/s, each round | requests/s (median) | vs first row | vs nginx, same bytes | p50 ms | p99 ms | bytes per response |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for label, runs in wrk.items():
            versus = runs[0].get("versus")
            against = f"{rps[label] / rps[versus]:.2f}" if versus in rps else "-"
            each = ", ".join(f"{r['rps']:,.0f}" for r in runs)
            print(f"| {label} | {each} | {rps[label]:,.0f} | {rps[label] / baseline:.2f} | {against} | "
                  f"{statistics.median(r['p50'] for r in runs):.2f} | {statistics.median(r['p99'] for r in runs):.2f} | "
                  f"{statistics.median(r['bytes_per_request'] for r in runs):,.0f} |")
        print()
    compiles = [row for row in rows if row["kind"] == "compile"]
    if compiles:
        medians = {row["label"]: statistics.median(row["seconds"]) for row in compiles}
        print("| `uv pip compile`, warm | runs | median s | runs, s | uv's CPU s (median) | speed-up |")
        print("|---|---:|---:|---|---:|---:|")
        for row in compiles:
            median = medians[row["label"]]
            versus = row.get("versus")
            speedup = f"{medians[versus] / median:.2f}" if versus in medians else "-"
            print(f"| {row['label']} | {len(row['seconds'])} | {median:.2f} | "
                  f"{', '.join(f'{s:.2f}' for s in row['seconds'])} | {statistics.median(row['cpu']):.2f} | "
                  f"{speedup} |")
        print()
    latencies = [row for row in rows if row["kind"] == "latency"]
    if latencies:
        print("| page request (one at a time, keep-alive) | client | sent as | requests | median ms | max ms | body bytes |")
        print("|---|---|---|---:|---:|---:|---:|")
        for row in latencies:
            values = row["seconds"]
            sent = ", ".join(row["sent"]) or "-"
            size = f"{row['bytes']:,.0f}" if row["bytes"] else "-"
            print(f"| {row['label']} | {row['coding']} | {sent} | {len(values)} | "
                  f"{statistics.median(values) * 1e3:.1f} | {max(values) * 1e3:.1f} | {size} |")
        print()
    memories = [row for row in rows if row["kind"] == "memory"]
    if memories:
        print("| server memory | RSS MB | peak RSS (VmHWM) MB |")
        print("|---|---:|---:|")
        for row in memories:
            print(f"| {row['label']} | {row['VmRSS'] / 1e6:.1f} | {row['VmHWM'] / 1e6:.1f} |")


def main():
    command, arguments = sys.argv[1], sys.argv[2:]
    commands = {
        "tree": lambda root, project, files: tree(root, project, int(files)),
        "root": root,
        "check": check,
        "latency": latency,
        "after_write": after_write,
        "wrk": wrk_summary,
        "compile": compile_times,
        "memory": memory,
        "report": report,
    }
    if command not in commands:
        sys.exit(__doc__)
    commands[command](*arguments)


if __name__ == "__main__":
    main()
