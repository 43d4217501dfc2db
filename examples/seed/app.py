"""The seed's web application: one page on port 8000."""

import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

PAGE = """<!doctype html>
<html><head><title>my-web-app</title></head>
<body><h1>Hello from my-web-app</h1>
<p>Served by {host}, a container built and run by pallet.</p></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.format(host=socket.gethostname()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on :{port}", flush=True)
    HTTPServer(("0.0.0.0", port), Handler).serve_forever()
