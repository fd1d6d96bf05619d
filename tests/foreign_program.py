"""The other program a port race test plays: something of another owner listening on a port
our server was about to bind (tests/env/test_port_races.py, tests/cluster/test_cluster_ports.py)."""

from __future__ import annotations

import http.server
import threading


class AnsweringHTTP:
    """Listens on `port` and answers every GET with 200 and JSON, as a foreign toxiproxy (or
    any web server) would; `close()` stops it."""

    def __init__(self, port: int) -> None:
        class OK(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"version": "not ours"}')

            def log_message(self, *a: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", port), OK)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
