#!/usr/bin/env python3
"""A tiny web app for the demo: serves this release's files on 127.0.0.1:8080."""
import functools
import http.server
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), handler).serve_forever()
