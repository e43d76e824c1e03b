"""A small stateful HTTP fake on loopback, with a control plane to inject faults.

Every fake serves its vendor's API on `url` (threaded `http.server`, HTTP/1.1) and, under
`/_fake/`, a control plane for tests and the emulator:

=========================  =================================================================
POST /_fake/faults         add a fault; the next matching requests get it (JSON body):
                           ``{"mode": "status", "status": 500, "count": 2}``   answer 500 twice
                           ``{"mode": "429", "retry_after": 1, "count": 1}``  429 + Retry-After
                           ``{"mode": "slow", "seconds": 5, "count": 1}``     delay, then serve
                           ``{"mode": "drop", "count": 1}``  serve (state changes!) but close
                           the connection without an answer, as a lost response
                           Optional ``"path"``: only requests whose path starts with it;
                           ``"count"`` null or absent for slow/drop means once, ``-1`` forever
GET  /_fake/faults         the faults still pending
DELETE /_fake/faults       clear them
GET  /_fake/state          the fake's state (JSON), plus every request seen (no secrets)
POST /_fake/reset          forget state, faults and the request log
=========================  =================================================================
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("storewire.fakes")

FAKE_PREFIX = "/_fake/"


@dataclass
class FakeRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class FakeResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Fault:
    mode: str
    count: int = 1
    status: int = 500
    retry_after: float = 1.0
    seconds: float = 0.0
    path: str = ""

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Fault:
        mode = str(spec.get("mode", "status"))
        if mode not in ("status", "429", "slow", "drop", "throttle"):
            raise ValueError(f"unknown fault mode {mode!r}")
        count = spec.get("count")
        return cls(
            mode=mode,
            count=1 if count is None else int(count),
            status=int(spec.get("status", 500)),
            retry_after=float(spec.get("retry_after", 1)),
            seconds=float(spec.get("seconds", 0)),
            path=str(spec.get("path", "")),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "count": self.count,
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "path": self.path,
        }


class _QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up (a worker killed mid-request, a timeout) is routine for a vendor:
    no traceback on stderr. Anything else is the fake's own bug and is logged as one."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        log.exception("fake failed serving %s", client_address)


class FakeServer:
    """Base of the vendor fakes: subclasses implement `handle`, `state` and `reset_state`."""

    name = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._server: _QuietHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} fake is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _QuietHTTPServer((self.host, self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        log.info("%s fake on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what subclasses provide

    def handle(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(404, {"error": "not found"})

    def state(self) -> dict[str, Any]:
        return {}

    def reset_state(self) -> None:
        """Forget the vendor state (subclasses)."""

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        """Extra `/_fake/...` endpoints of a subclass; None when not one of them."""
        return None

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        """The vendor-shaped answer of an injected `status` fault."""
        return FakeResponse(status, {"error": {"message": f"injected fault {status}"}})

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(429, {"error": "throttled"}, {"Retry-After": "1"})

    # -- faults

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        fault = Fault.parse(spec)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path and not path.startswith(fault.path):
                    continue
                if fault.count > 0:
                    fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.reset_state()

    # -- dispatch

    def dispatch(self, request: FakeRequest) -> tuple[FakeResponse | None, bool]:
        """The answer, and whether to drop the connection instead of sending it."""
        if request.path.startswith(FAKE_PREFIX):
            return self._control(request), False
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "idempotency_key": request.header("idempotency-key") or None,
                    "at": time.time(),
                }
            )
        fault = self.take_fault(request.path)
        if fault is not None:
            if fault.mode == "status":
                return self.error_response(fault.status, request), False
            if fault.mode == "429":
                response = self.throttled_response(request)
                response.headers["Retry-After"] = _seconds(fault.retry_after)
                return response, False
            if fault.mode == "slow":
                time.sleep(fault.seconds)
            if fault.mode == "throttle":
                return self.throttled_response(request), False
        response = self.handle(request)
        return response, fault is not None and fault.mode == "drop"

    def _control(self, request: FakeRequest) -> FakeResponse:
        parts = [p for p in request.path[len(FAKE_PREFIX) :].split("/") if p]
        try:
            if parts == ["faults"]:
                if request.method == "POST":
                    fault = self.add_fault(request.json())
                    return FakeResponse(200, {"fault": fault.describe()})
                if request.method == "DELETE":
                    with self.lock:
                        self.faults.clear()
                    return FakeResponse(200, {"faults": []})
                with self.lock:
                    return FakeResponse(200, {"faults": [f.describe() for f in self.faults]})
            if parts == ["state"]:
                with self.lock:
                    return FakeResponse(200, {**self.state(), "requests": list(self.requests)})
            if parts == ["reset"] and request.method == "POST":
                self.reset()
                return FakeResponse(200, {"reset": True})
            answer = self.control(request, parts)
        except (ValueError, KeyError, TypeError) as error:
            return FakeResponse(400, {"error": str(error)})
        return answer or FakeResponse(404, {"error": f"no control endpoint {request.path}"})


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server_fake.name, format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = FakeRequest(
            method=self.command,
            path=split.path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response, drop = self.server_fake.dispatch(request)
        except Exception:
            log.exception("%s fake failed", self.server_fake.name)
            response, drop = FakeResponse(500, {"error": "fake crashed"}), False
        if drop or response is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = response.encode()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        try:
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up first (its read timeout during a "slow" fault): as a vendor's
            # server would, carry on; the effect, if any, has happened
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PUT = _serve
    do_PATCH = _serve
