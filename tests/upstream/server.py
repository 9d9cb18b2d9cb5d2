#!/usr/bin/env python3
"""The upstream index in edelweiss's mirror tests: a real HTTP server over a tree the tests
generate (simple/<project>/index.json and index.html, files/<filename>), that counts the
requests it answers and can be told to fail in the ways real upstreams fail. It also plays
crates.io's download host: crates/<name>/<name>-<version>.crate.

  server.py --root DIR [--mode json|html]

json: PEP 691 JSON when the client asks for it, PEP 503 HTML otherwise (like PyPI).
html: only the static HTML files, whatever the client asks (like a directory on a web server).

GET /_stats gives the request counts ("all" counts every request but these two);
POST /_control with a JSON body sets faults: {"pages": F, "files": F, "file_delay": seconds},
F one of none, 500, hang, truncate, wronghash, close; {"redirects": {PATH: LOCATION}}
answers a GET of exactly PATH (with its query) with a 302 to LOCATION, as a hostile or
moved upstream does; {"hold": true} keeps every page and file request waiting, counted
under "held PATH" as it arrives, until {"hold": false}: a slow upstream, released when
the test has seen what happens meanwhile.

The pages it serves are whatever the tests wrote into the tree, hostile ones included.
"""

import argparse
import hashlib
import http.server
import json
import os
import sys
import threading
import time
from collections import Counter

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class State:
    lock = threading.Lock()
    counts = Counter()
    faults = {"pages": "none", "files": "none"}
    file_delay = 0.0
    redirects = {}
    released = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle delays each page.
    disable_nagle_algorithm = True
    root = "."
    mode = "json"

    def log_message(self, format, *args):
        pass

    def count(self, status):
        path = self.path.split("?")[0]
        with State.lock:
            if self.headers.get("Authorization"):
                State.counts[f"authorization {self.headers['Authorization']}"] += 1
            State.counts["all"] += 1
            State.counts[path] += 1
            State.counts[f"{path} {status}"] += 1
            State.counts[f"status {status}"] += 1

    def send_body(self, status, body, content_type, extra=()):
        self.count(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        if self.path != "/_control":
            return self.send_body(404, b"not found\n", "text/plain")
        length = int(self.headers.get("Content-Length", "0"))
        update = json.loads(self.rfile.read(length) or b"{}")
        with State.lock:
            for key in ("pages", "files"):
                if key in update:
                    State.faults[key] = update[key]
            State.file_delay = float(update.get("file_delay", State.file_delay))
            State.redirects.update(update.get("redirects", {}))
            if update.get("hold") is True:
                State.released.clear()
            elif update.get("hold") is False:
                State.released.set()
        self.send_body(200, b"ok\n", "text/plain")

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/_stats":
            with State.lock:
                body = json.dumps(dict(State.counts)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with State.lock:
            location = State.redirects.get(self.path)
        if location is not None:
            return self.send_body(302, b"moved\n", "text/plain", [("Location", location)])
        if path.startswith("/simple/"):
            return self.page(path)
        if path.startswith("/files/"):
            return self.file(path)
        if path.startswith("/crates/"):
            return self.crate(path)
        self.send_body(404, b"not found\n", "text/plain")

    def wait_if_held(self, path):
        """Counts a request that arrives while requests are held, and holds it (a minute at most)."""
        if State.released.is_set():
            return
        with State.lock:
            State.counts[f"held {path}"] += 1
        State.released.wait(60)

    def apply_fault(self, kind, body, content_type):
        """Answers with the configured fault; returns True when it did."""
        fault = State.faults[kind]
        if fault == "none":
            return False
        if fault == "500":
            self.send_body(500, b"upstream exploded\n", "text/plain")
        elif fault == "hang":
            self.count("hang")
            time.sleep(30)
            self.close_connection = True
        elif fault == "close":
            self.count("close")
            self.close_connection = True
        elif fault == "truncate":
            self.count("truncate")
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif fault == "wronghash":
            self.send_body(200, bytes(b ^ 0xFF for b in body), content_type)
        return True

    def page(self, path):
        parts = [part for part in path.split("/") if part]
        if len(parts) != 2 or not path.endswith("/"):
            return self.send_body(404, b"not found\n", "text/plain")
        directory = os.path.join(self.root, "simple", parts[1])
        wants_json = JSON_TYPE in self.headers.get("Accept", "")
        if self.mode == "json" and wants_json and os.path.exists(os.path.join(directory, "index.json")):
            filename, content_type = "index.json", JSON_TYPE
        else:
            filename, content_type = "index.html", "text/html; charset=utf-8"
        try:
            with open(os.path.join(directory, filename), "rb") as handle:
                body = handle.read()
        except FileNotFoundError:
            return self.send_body(404, b"no such project\n", "text/plain")
        self.wait_if_held(path)
        if self.apply_fault("pages", body, content_type):
            return
        etag = '"%s"' % hashlib.sha256(body).hexdigest()
        if self.headers.get("If-None-Match") == etag:
            self.count(304)
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_body(200, body, content_type, [("ETag", etag)])

    def file(self, path):
        name = path[len("/files/"):]
        if "/" in name or name.startswith("."):
            return self.send_body(404, b"not found\n", "text/plain")
        try:
            with open(os.path.join(self.root, "files", name), "rb") as handle:
                body = handle.read()
        except FileNotFoundError:
            return self.send_body(404, b"no such file\n", "text/plain")
        self.wait_if_held(path)
        if State.file_delay:
            time.sleep(State.file_delay)
        if self.apply_fault("files", body, "application/octet-stream"):
            return
        self.send_body(200, body, "application/octet-stream")

    def crate(self, path):
        parts = path[len("/crates/"):].split("/")
        if len(parts) != 2 or any(not part or part.startswith(".") for part in parts):
            return self.send_body(404, b"not found\n", "text/plain")
        try:
            with open(os.path.join(self.root, "crates", *parts), "rb") as handle:
                body = handle.read()
        except FileNotFoundError:
            return self.send_body(404, b"no such crate\n", "text/plain")
        if self.apply_fault("files", body, "application/gzip"):
            return
        self.send_body(200, body, "application/gzip")


def main():
    State.released.set()
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--mode", choices=["json", "html"], default="json")
    arguments = parser.parse_args()
    Handler.root = arguments.root
    Handler.mode = arguments.mode
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
