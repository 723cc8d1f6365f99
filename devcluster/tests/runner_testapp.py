"""A small HTTP server that the runner's tests run as pods (image devcluster-test/app).

It binds MICRO_BIND_HOST:PORT like the services do and answers:
  GET /        {"pod", "ip", "version", "peer"}  (VERSION env; peer: the caller's address)
  GET /healthz 200, or 500 when HEALTH=fail   (liveness)
  GET /ready   200 once up, 503 while draining or when READY=fail (readiness)
  GET /env     the process environment
  GET /file?path=/etc/x  a file at its in-container path, under $DEVCLUSTER_ROOT
On SIGTERM it fails readiness, keeps serving DRAIN_S seconds, then exits 0. With
CONFIG_FILE set it first loads that YAML file (in-container path) and exits 1 when it
is not valid YAML, as a service with a broken ConfigMap does.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import yaml

draining = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        if url.path == "/healthz":
            failing = os.environ.get("HEALTH") == "fail"
            self._answer(500 if failing else 200, {"healthy": not failing})
        elif url.path == "/ready":
            ready = not draining.is_set() and os.environ.get("READY") != "fail"
            self._answer(200 if ready else 503, {"ready": ready})
        elif url.path == "/env":
            self._answer(200, dict(os.environ))
        elif url.path == "/file":
            wanted = urllib.parse.parse_qs(url.query)["path"][0]
            path = pathlib.Path(os.environ["DEVCLUSTER_ROOT"]) / wanted.lstrip("/")
            try:
                self._answer(200, {"content": path.read_text()})
            except OSError as error:
                self._answer(404, {"error": str(error)})
        else:
            self._answer(
                200,
                {
                    "pod": os.environ.get("POD_NAME", ""),
                    "ip": os.environ.get("MICRO_BIND_HOST", ""),
                    "version": os.environ.get("VERSION", ""),
                    "peer": self.client_address[0],
                },
            )


def load_config() -> None:
    wanted = os.environ.get("CONFIG_FILE")
    if not wanted:
        return
    path = pathlib.Path(os.environ["DEVCLUSTER_ROOT"]) / wanted.lstrip("/")
    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        print(f"config {wanted} is not valid YAML: {' '.join(str(error).split())}", flush=True)
        sys.exit(1)
    print(f"config {wanted} loaded", flush=True)


def main() -> None:
    load_config()
    server = ThreadingHTTPServer(
        (os.environ["MICRO_BIND_HOST"], int(os.environ.get("PORT", "8080"))), Handler
    )
    server.daemon_threads = True
    drain_s = float(os.environ.get("DRAIN_S", "0"))

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        draining.set()

        def finish() -> None:
            time.sleep(drain_s)
            server.shutdown()

        threading.Thread(target=finish, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"listening on {server.server_address}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
