"""moto as a server on loopback, behind one lock, with the event recorder and fault injection.

Control endpoints on the same server (under ``/_storewire/``):

- ``GET /_storewire/health``                         -> ``{"status": "ok"}``
- ``GET /_storewire/events``                         -> every event put on a bus, oldest first
- ``POST /_storewire/faults`` ``{"service","operation","status","count",["code","message"]}``
- ``GET /_storewire/faults`` / ``DELETE /_storewire/faults``
- anything else under ``/_storewire/`` is handed to the ``control`` callback (the emulator).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from .cfn import ACCOUNT_ID, REGION
from .wsgi import LoopbackServer

log = logging.getLogger("storewire.emulator")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
ControlHandler = Callable[[str, str, bytes, dict[str, str]], tuple[int, Any]]

JSON_TARGET_PREFIXES = {
    "AWSEvents": "events",
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
    "secretsmanager": "secretsmanager",
    "AmazonSSM": "ssm",
    "Logs_20140328": "logs",
}


# JSON-protocol services whose every operation moto serves from one handler on "/".
DIRECT_ROUTES = {
    "dynamodb": ("moto.dynamodb.urls", "{0}/"),
    "events": ("moto.events.urls", "{0}/"),
    "sqs": ("moto.sqs.urls", "{0}/$"),
}


def _dispatch_direct(
    handler: Callable[..., Any], env: dict[str, Any]
) -> tuple[str, list[Any], bytes]:
    """What moto's Flask wrapper (convert_to_flask_response) does, without Flask."""
    from botocore.exceptions import ClientError
    from moto.moto_server.werkzeug_app import BackendRequest
    from werkzeug.http import HTTP_STATUS_CODES

    request = BackendRequest(env)
    try:
        result = handler(request, request.raw_url, dict(request.headers))
    except ClientError as exc:
        result = 400, {}, exc.response["Error"]["Message"]
    status, headers, content = result if len(result) == 3 else (200, {}, result)
    payload = content.encode() if isinstance(content, str) else bytes(content or b"")
    pairs = [(str(k), str(v)) for k, v in (headers or {}).items() if k.lower() != "content-length"]
    pairs.append(("Content-Length", str(len(payload))))
    code = int(status)
    return f"{code} {HTTP_STATUS_CODES.get(code, 'Unknown')}", pairs, payload


@dataclass
class Fault:
    service: str
    operation: str
    status: int
    remaining: int | None  # None: until cleared
    code: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "status": self.status,
            "count": self.remaining,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class RequestInfo:
    service: str | None
    operation: str | None
    json_protocol: bool


def _service_from_auth(environ: dict[str, Any]) -> str | None:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        return str(scope.split("/")[3].lower())
    except IndexError:
        return None


def describe_request(environ: dict[str, Any], body: bytes) -> RequestInfo:
    """Which service and operation an AWS request targets (JSON or query protocol)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    service = _service_from_auth(environ)
    if service == "eventbridge":
        service = "events"
    if target:
        prefix, _, json_operation = target.partition(".")
        return RequestInfo(service or JSON_TARGET_PREFIXES.get(prefix), json_operation, True)
    operation: str | None = None
    ctype = environ.get("CONTENT_TYPE", "")
    if "x-www-form-urlencoded" in ctype or environ.get("REQUEST_METHOD") == "POST":
        form = parse_qs(body.decode("utf-8", "replace"))
        operation = next(iter(form.get("Action") or []), None)
    if operation is None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        operation = next(iter(query.get("Action") or []), None)
    return RequestInfo(service, operation, False)


class MotoServer:
    """moto's WSGI app on a loopback server (keep-alive, thread pool), behind one lock."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        control: ControlHandler | None = None,
        on_write: Callable[[RequestInfo], None] | None = None,
    ) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            create_backend_app,
        )

        from . import moto_patches

        moto_patches.apply()
        self._moto: WSGIApp = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        self.control = control
        self.on_write = on_write
        self.request_count = 0
        self._direct: dict[str, Callable[..., Any]] = {}
        self._server = LoopbackServer(self, host, port, name="moto-server")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    # -- recorder

    def recorded_events(self) -> list[dict[str, Any]]:
        with self._events_lock:
            return [dict(event) for event in self._events]

    def _record_put_events(self, request_body: bytes, response_body: bytes) -> None:
        try:
            request = json.loads(request_body or b"{}")
            response = json.loads(response_body or b"{}")
        except ValueError:
            return
        entries = request.get("Entries") or []
        results = response.get("Entries") or []
        now = dt.datetime.now(dt.UTC)
        recorded = []
        for entry, result in zip(entries, results, strict=False):
            if not result.get("EventId") or result.get("ErrorCode"):
                continue
            try:
                detail = json.loads(entry.get("Detail") or "{}")
            except ValueError:
                detail = entry.get("Detail")
            when = entry.get("Time")
            if isinstance(when, int | float):
                stamp = dt.datetime.fromtimestamp(when, dt.UTC)
            elif isinstance(when, str) and when:
                stamp = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
            else:
                stamp = now
            recorded.append(
                {
                    "version": "0",
                    "id": result["EventId"],
                    "detail-type": entry.get("DetailType"),
                    "source": entry.get("Source"),
                    "account": ACCOUNT_ID,
                    "time": stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": REGION,
                    "resources": entry.get("Resources") or [],
                    "detail": detail,
                }
            )
        with self._events_lock:
            self._events.extend(recorded)

    # -- faults

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        count = spec.get("count", 1)
        fault = Fault(
            service=str(spec.get("service", "*")).lower(),
            operation=str(spec.get("operation", "*")),
            status=int(spec.get("status", 500)),
            remaining=None if count in (None, 0, -1) else int(count),
            code=spec.get("code"),
            message=spec.get("message"),
        )
        with self._faults_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, info: RequestInfo) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.service not in ("*", info.service):
                    continue
                if fault.operation not in ("*", info.operation):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(
        fault: Fault, info: RequestInfo
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        status = fault.status
        code = fault.code or {
            400: "ValidationException",
            429: "ThrottlingException",
            500: "InternalException",
            503: "ServiceUnavailable",
        }.get(status, "InternalFailure")
        message = fault.message or f"Injected fault ({info.service}.{info.operation})"
        request_id = str(uuid.uuid4())
        reason = _REASONS.get(status, "Error")
        if info.json_protocol:
            body = json.dumps({"__type": code, "message": message}).encode()
            headers = [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", code),
                ("x-amzn-RequestId", request_id),
            ]
        else:
            body = (
                "<ErrorResponse><Error><Type>Receiver</Type>"
                f"<Code>{code}</Code><Message>{message}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        headers.append(("Content-Length", str(len(body))))
        return f"{status} {reason}", headers, body

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path.startswith("/_storewire/"):
            return self._control(environ, path, body, start_response)
        info = describe_request(environ, body)
        fault = self._take_fault(info)
        if fault is not None:
            status, headers, payload = self._fault_response(fault, info)
            log.info("fault injected: %s.%s -> %s", info.service, info.operation, status)
            start_response(status, headers)
            return [payload]
        if info.service == "sqs" and info.operation == "ReceiveMessage":
            return self._long_poll(environ, body, info, start_response)
        status, headers, payload = self._call_moto(environ, body, info)
        ok = status.startswith("2")
        if ok and info.service == "events" and info.operation == "PutEvents":
            self._record_put_events(body, payload)
        if ok and self.on_write is not None and info.operation and _is_write(info.operation):
            self.on_write(info)
        start_response(status, headers)
        return [payload]

    def _call_moto(
        self, environ: dict[str, Any], body: bytes, info: RequestInfo | None = None
    ) -> tuple[str, list[Any], bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        direct = self._direct_handler(info, env) if info is not None else None
        with self.lock:
            self.request_count += 1
            if direct is not None:
                return _dispatch_direct(direct, env)
            captured: dict[str, Any] = {}

            def capture(
                status: str, headers: list[Any], exc_info: Any = None
            ) -> Callable[[bytes], None]:
                captured["status"] = status
                captured["headers"] = headers
                return lambda _data: None

            result = self._moto(env, capture)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return captured["status"], captured["headers"], payload

    def _direct_handler(
        self, info: RequestInfo, environ: dict[str, Any]
    ) -> Callable[..., Any] | None:
        """moto's own handler for a JSON-protocol request to "/", skipping Flask's routing
        (a quarter of moto's time per request); None: go through moto's WSGI app."""
        if not info.json_protocol or environ.get("PATH_INFO") != "/":
            return None
        service = info.service or ""
        route = DIRECT_ROUTES.get(service)
        if route is None:
            return None
        if service not in self._direct:
            import importlib

            module, path = route
            self._direct[service] = importlib.import_module(module).url_paths[path]
        return self._direct[service]

    def _long_poll(
        self,
        environ: dict[str, Any],
        body: bytes,
        info: RequestInfo,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """ReceiveMessage with WaitTimeSeconds: poll moto without holding the lock while waiting."""
        wait = 0.0
        short_body = body
        if info.json_protocol:
            try:
                request = json.loads(body or b"{}")
                wait = float(request.get("WaitTimeSeconds") or 0)
                request["WaitTimeSeconds"] = 0
                short_body = json.dumps(request).encode()
            except ValueError:
                pass
        else:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            wait = float((form.get("WaitTimeSeconds") or ["0"])[0] or 0)
            form["WaitTimeSeconds"] = ["0"]
            short_body = urlencode(form, doseq=True).encode()
        deadline = time.monotonic() + min(wait, 20.0)
        while True:
            status, headers, payload = self._call_moto(environ, short_body, info)
            if not status.startswith("2") or time.monotonic() >= deadline:
                break
            if b"<Message>" in payload or b'"Messages"' in payload:
                break
            time.sleep(0.05)
        start_response(status, headers)
        return [payload]

    def _control(
        self, environ: dict[str, Any], path: str, body: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            status, answer = self._control_dispatch(method, path, body, query)
        except Exception as exc:  # a control call must never kill the server
            log.exception("control %s %s failed", method, path)
            status, answer = 500, {"message": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps(answer, default=str).encode()
        start_response(
            f"{status} {_REASONS.get(status, 'OK')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _control_dispatch(
        self, method: str, path: str, body: bytes, query: dict[str, str]
    ) -> tuple[int, Any]:
        if path == "/_storewire/health":
            return 200, {"status": "ok"}
        if path == "/_storewire/events" and method == "GET":
            return 200, self.recorded_events()
        if path == "/_storewire/faults":
            if method == "POST":
                spec = json.loads(body or b"{}")
                specs = spec if isinstance(spec, list) else [spec]
                return 200, [self.add_fault(item).as_dict() for item in specs]
            if method == "DELETE":
                self.clear_faults()
                return 200, []
            with self._faults_lock:
                return 200, [fault.as_dict() for fault in self._faults]
        if self.control is not None:
            return self.control(method, path, body, query)
        return 404, {"message": "Not Found"}


def _is_write(operation: str) -> bool:
    return operation in {
        "SendMessage",
        "SendMessageBatch",
        "PutEvents",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "StartMessageMoveTask",
    }


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
