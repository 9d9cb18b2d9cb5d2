#!/usr/bin/env python3
"""The S3 server of edelweiss's storage tests: moto's S3 service (installed by .ci/setup,
pinned in .ci/s3-requirements.txt) over HTTP on a free loopback port.

  server.py --bucket NAME [--bucket NAME ...] [--host ADDRESS] [--port PORT] [--until-killed]

Prints `listening on http://HOST:PORT` once the buckets exist, then serves until killed or
until its standard input closes (so a test process that exits takes it along). In a container,
whose standard input is closed from the start, `--until-killed` serves until killed only.
Requests may be signed with any credentials: moto checks the request, not the signature.

Writes (PUT, POST, DELETE) are handled one at a time. moto checks `If-None-Match: *` and then
writes, as two steps: six CompleteMultipartUpload requests racing for one key with
`If-None-Match: *` all succeed on a threaded moto, where S3 lets exactly one through. Taking
the writes in turn makes the check and the write one step, as on S3; reads stay concurrent.
"""

import argparse
import logging
import os
import sys
import threading

from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.serving import make_server
from werkzeug.test import Client


class WritesInTurn:
    """A WSGI wrapper that runs one write request at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            return self.app(environ, start_response)
        with self.lock:
            # moto answers with a body it built in full; taking it here keeps the write inside
            # the lock.
            return list(self.app(environ, start_response))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--until-killed", action="store_true")
    args = parser.parse_args()
    # A line per request would bury the test's own output; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_backend_app("s3")
    for bucket in args.bucket:
        response = Client(app).put(f"/{bucket}")
        if response.status_code != 200:
            sys.exit(f"cannot create bucket {bucket}: {response.status} {response.get_data(as_text=True)}")
    server = make_server(args.host, args.port, WritesInTurn(app), threaded=True)
    if not args.until_killed:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"listening on http://{args.host}:{server.port}", flush=True)
    server.serve_forever()


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    main()
