#!/usr/bin/env python3
"""tests/upstream/server.py with TCP_NODELAY on its connections, for bench/mirror.sh.

The stock server writes a response's headers and its body in two writes; on loopback, Nagle's
algorithm holds the second write back until the client's delayed ACK (about 40 ms), so every
small page would cost 40 ms of waiting that belongs to neither the upstream nor edelweiss.
Arguments are the server's own (--root DIR --mode json|html).
"""

import importlib.util
import os
import sys

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "upstream", "server.py")

spec = importlib.util.spec_from_file_location("upstream_server", SERVER)
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
server.Handler.disable_nagle_algorithm = True
sys.exit(server.main())
