"""A real server's HTTPS, for the tests' real servers (not a test module itself): answers
every GET with 200 "ok" over TLS with the given certificate (and key, in one file).

    python tests/https_server.py CERT_PEM ADDRESS PORT
"""

from __future__ import annotations

import http.server
import ssl
import sys


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    cert, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = http.server.HTTPServer((address, port), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
