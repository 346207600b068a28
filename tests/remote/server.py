"""A real HTTP server for the remote-source tests: static files, HTTP range requests, bytes served counted per file.

Started on a thread by the tests (``http.server``), reached through fsspec's own ``http`` filesystem. It never lists
a folder (as object stores behind https do not), and can misbehave on purpose: answer short, cut the connection, stall.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Served:
    """What the server did: bytes of body sent per URL path, and every request line."""

    bytes: Counter[str] = field(default_factory=Counter)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, suffix: str) -> int:
        """Bytes served of the files whose URL path ends with ``suffix``."""
        with self.lock:
            return sum(n for path, n in self.bytes.items() if path.endswith(suffix))

    def total(self) -> int:
        with self.lock:
            return sum(self.bytes.values())

    def reset(self) -> None:
        with self.lock:
            self.bytes.clear()
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures
        pass

    def _file(self) -> Path | None:
        for prefix, folder in self.server.mounts.items():
            if self.path.startswith(prefix + "/"):
                file = folder / self.path[len(prefix) + 1 :]
                return file if file.is_file() else None
        return None

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        with self.server.served.lock:
            self.server.served.requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}")
        file = self._file()
        if file is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = file.stat().st_size
        start, end, status = 0, size, 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match and body:
            first, last = match.groups()
            start, end = (size - int(last), size) if not first else (int(first), min(size, int(last or size - 1) + 1))
            status = 206
        data = file.read_bytes()[start:end] if body else b""
        mode = self.server.mode
        declared = end - start
        if body and mode == "short":
            data = data[: len(data) // 2]  # an honest but short answer: Content-Length says what is sent
            declared = len(data)
        self.send_response(status)
        self.send_header("Content-Length", str(declared))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not body:
            return
        if mode == "stall" and status == 206:
            time.sleep(self.server.stall_s)  # headers sent, the body never comes: the client must time out
            self.close_connection = True
            return
        if mode == "cut" and status == 206:
            data = data[: len(data) // 2]  # declares the whole range, sends half, hangs up
            self.close_connection = True
        self.wfile.write(data)
        with self.server.served.lock:
            self.server.served.bytes[self.path] += len(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mounts: dict[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mounts = mounts
        self.served = Served()
        self.mode = "honest"
        self.stall_s = 0.0


@dataclass
class RangeServer:
    url: str
    served: Served
    _server: _Server

    def set_mode(self, mode: str, stall_s: float = 0.0) -> None:
        """``honest``, ``short`` (half the range, honest length), ``cut`` (half, then hang up), ``stall``."""
        self._server.mode = mode
        self._server.stall_s = stall_s


@contextmanager
def range_server(mounts: dict[str, Path]) -> Iterator[RangeServer]:
    """Serve each folder under its URL prefix (``{"/ckpt": Path(...)}`` -> ``http://127.0.0.1:PORT/ckpt/...``)."""
    server = _Server(mounts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RangeServer(f"http://127.0.0.1:{server.server_address[1]}", server.served, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
