"""The emulator's AWS endpoint (moto) on a lean loopback HTTP/1.1 server.

Every AWS call a worker makes crosses this server, a few dozen per order, and the emulator's
process is the run's bottleneck, so what the server costs per request is what a reliability
run costs. History:

- werkzeug's development server closed the connection after every response and then waited
  10 ms for a body the application might have left unread: ~10 ms of an ~11 ms round trip.
- waitress kept connections alive, but hands every request from its asyncore loop thread to a
  task thread and every answer back through a trigger pipe: a quarter of the emulator
  process's time in a faulted run (py-spy, `--gil`), more than moto's DynamoDB models.
- This server gives each connection a thread that reads with blocking calls (which release
  the GIL while they wait), buffers the request body before the application sees it, and
  answers with one ``sendall``. Clients here are boto3's keep-alive pools in a few dozen
  worker processes, so a thread per connection is a few dozen threads.

It speaks what AWS SDKs send: keep-alive, ``Content-Length`` and chunked bodies,
``Expect: 100-continue`` (boto3 sends it with S3 uploads and would wait a second for the
interim answer), HTTP/1.0 with and without keep-alive. A malformed request gets a 400 and its
connection closes; an application error gets a 500.

The HTTP API stays on werkzeug: it joins repeated headers with "," as API Gateway does,
and it carries a few requests per order, not a hundred.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any, cast
from urllib.parse import unquote_to_bytes, urlsplit

log = logging.getLogger("storewire.emulator")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MAX_LINE_BYTES = 65536
MAX_HEADERS = 200
# A connection nobody has used for this long is closed (its client is gone or pooled too long).
IDLE_SECONDS = 300.0

_REASONS = {
    400: "Bad Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_WITHOUT_BODY = ("1", "204", "304")


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.x request we can answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        super().__init__(reason)


class LoopbackServer:
    """A WSGI application served on a loopback port, one daemon thread per connection."""

    def __init__(
        self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "wsgi"
    ) -> None:
        self._app = app
        self._name = name
        self._listener = socket.create_server((host, port), backlog=1024)
        self._server_name = host
        self._port = int(self._listener.getsockname()[1])  # asked once per request
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # wakes the connection's reader
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, address = self._listener.accept()
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.settimeout(IDLE_SECONDS)
            with self._connections_lock:
                self._connections.add(connection)
            threading.Thread(
                target=self._serve,
                args=(connection, address),
                name=f"{self._name}-connection",
                daemon=True,
            ).start()

    def _serve(self, connection: socket.socket, address: Any) -> None:
        reader = cast(IO[bytes], connection.makefile("rb", buffering=MAX_LINE_BYTES))
        try:
            while not self._closed.is_set() and self._answer_one(connection, reader, address):
                pass
        except (OSError, ValueError):  # the client went away, or stop() shut the socket
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            reader.close()
            connection.close()

    def _answer_one(self, connection: socket.socket, reader: IO[bytes], address: Any) -> bool:
        """Read one request and answer it; whether the connection stays open."""
        try:
            request = _read_request(connection, reader)
        except BadRequest as exc:
            connection.sendall(_error_response(exc.status, str(exc)))
            return False
        if request is None:
            return False
        environ, keep_alive = request
        environ.update(
            {
                "REMOTE_ADDR": address[0],
                "REMOTE_PORT": str(address[1]),
                "SERVER_NAME": self._server_name,
                "SERVER_PORT": str(self.port),
            }
        )
        status, headers, body = self._call_app(environ)
        if status is None:
            connection.sendall(_error_response(500, "the application failed"))
            return False
        head_only = environ["REQUEST_METHOD"] == "HEAD"
        lines = [f"HTTP/1.1 {status}\r\n"]
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length" and not head_only:
                continue  # written below from the body actually sent
            if lowered == "connection":
                keep_alive = keep_alive and value.lower() != "close"
                continue
            lines.append(f"{name}: {value}\r\n")
        if not head_only and not status.startswith(_WITHOUT_BODY):
            lines.append(f"Content-Length: {len(body)}\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        connection.sendall(head if head_only else head + body)
        return keep_alive

    def _call_app(self, environ: dict[str, Any]) -> tuple[str | None, list[Any], bytes]:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return written.append

        try:
            result = self._app(environ, start_response)
            try:
                written.extend(chunk for chunk in result if chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception(
                "%s: %s %s failed", self._name, environ["REQUEST_METHOD"], environ["PATH_INFO"]
            )
            return None, [], b""
        if not started:
            log.error("%s: the application never called start_response", self._name)
            return None, [], b""
        return str(started[0]), list(started[1]), b"".join(written)


def _read_request(
    connection: socket.socket, reader: IO[bytes]
) -> tuple[dict[str, Any], bool] | None:
    """The next request's WSGI environ (body buffered) and whether to keep the connection;
    None when the client closed it between requests."""
    line = reader.readline(MAX_LINE_BYTES + 1)
    while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore blank lines before a request
        line = reader.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None
    if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
        raise BadRequest(400, "request line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[0].isalpha():
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, f"unsupported protocol {version!r}")
    environ = _base_environ(method.upper(), target, version)
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE_BYTES + 1)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        if len(line) > MAX_LINE_BYTES:
            raise BadRequest(431, "header line too long")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        value = value.strip()
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    else:
        raise BadRequest(431, "too many header lines")
    connection_header = str(environ.get("HTTP_CONNECTION", "")).lower()
    if version == "HTTP/1.1":
        keep_alive = "close" not in connection_header
    else:
        keep_alive = "keep-alive" in connection_header
    if version == "HTTP/1.1" and str(environ.get("HTTP_EXPECT", "")).lower() == "100-continue":
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
        body = _read_chunked(reader)
        environ.pop("HTTP_TRANSFER_ENCODING")
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest(400, "Content-Length is not a number") from None
        if length < 0:
            raise BadRequest(400, "Content-Length is negative")
        body = reader.read(length) if length else b""
        if len(body) < length:
            return None  # the client went away mid-body
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    return environ, keep_alive


def _base_environ(method: str, target: str, version: str) -> dict[str, Any]:
    raw = target
    if not target.startswith("/"):  # absolute form (a proxy's), or garbage
        split = urlsplit(target)
        if not split.scheme:
            raise BadRequest(400, "malformed request target")
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    path, _, query = target.partition("?")
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": raw,
        "REQUEST_URI": raw,
        "SERVER_PROTOCOL": version,
        "SERVER_SOFTWARE": "storewire-emulator",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


def _read_chunked(reader: IO[bytes]) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = reader.readline(MAX_LINE_BYTES + 1)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "malformed chunk size") from None
        if size < 0:
            raise BadRequest(400, "malformed chunk size")
        if size == 0:
            while reader.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailers: read and dropped
            return b"".join(chunks)
        chunk = reader.read(size)
        if len(chunk) < size or reader.readline(3) not in (b"\r\n", b"\n"):
            raise BadRequest(400, "truncated chunk")
        chunks.append(chunk)


def _error_response(status: int, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body
