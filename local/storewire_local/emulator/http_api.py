"""The HTTP API: template routes served locally as API Gateway proxy events."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import BaseWSGIServer, make_server

from .cfn import ACCOUNT_ID
from .runner import InvocationError
from .stack import FunctionSpec

log = logging.getLogger("storewire.emulator")

MAX_BODY_BYTES = 10 * 1024 * 1024
StartResponse = Callable[..., Any]


@dataclass
class Route:
    function: str
    method: str  # upper case, or "ANY"
    path: str  # template path, or "$default"
    payload_version: str  # "2.0" or "1.0"
    regex: re.Pattern[str] | None
    params: list[str]

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, int, int]:
        if self.regex is None:
            return (3, 0, 0)
        greedy = 1 if "+}" in self.path else 0
        return (greedy, len(self.params), -len(self.path))


def compile_path(path: str) -> tuple[re.Pattern[str], list[str]]:
    params: list[str] = []
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                name = name[:-1]
                pattern += f"(?P<p{len(params)}>.+)"
            else:
                pattern += f"(?P<p{len(params)}>[^/]+)"
            params.append(name)
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}/?$" if path != "/" else "^/$"), params


def routes_for(functions: Iterable[FunctionSpec]) -> list[Route]:
    routes: list[Route] = []
    for spec in functions:
        for event in spec.events:
            if event.type not in ("HttpApi", "Api"):
                continue
            props = event.properties
            path = str(props.get("Path") or "$default")
            method = str(props.get("Method") or "ANY").upper()
            if method in ("*", "X-AMAZON-APIGATEWAY-ANY-METHOD"):
                method = "ANY"
            version = (
                "1.0" if event.type == "Api" else str(props.get("PayloadFormatVersion", "2.0"))
            )
            if path == "$default":
                routes.append(Route(spec.logical_id, "ANY", path, version, None, []))
            else:
                regex, params = compile_path(path)
                routes.append(Route(spec.logical_id, method, path, version, regex, params))
    routes.sort(key=lambda r: r.specificity)
    return routes


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        if route.method not in ("ANY", method):
            continue
        if route.regex is None:
            return route, {}
        match = route.regex.match(path)
        if match:
            values = {name: match.group(f"p{i}") for i, name in enumerate(route.params)}
            return route, values
    return None


def _request_time(now: dt.datetime) -> str:
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _headers(environ: dict[str, Any]) -> tuple[dict[str, str], dict[str, list[str]]]:
    multi: dict[str, list[str]] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        multi.setdefault(name, []).append(str(value))
    return {k: ",".join(v) for k, v in multi.items()}, multi


def build_event_v2(
    route: Route, params: dict[str, str], environ: dict[str, Any], body: bytes
) -> dict[str, Any]:
    headers, _ = _headers(environ)
    now = dt.datetime.now(dt.UTC)
    method = environ.get("REQUEST_METHOD", "GET")
    raw_path = environ.get("PATH_INFO", "/")
    raw_query = environ.get("QUERY_STRING", "")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    cookie_header = headers.pop("cookie", None)
    if cookie_header:
        event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
    event["headers"] = headers
    if raw_query:
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    host = headers.get("host", "localhost")
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route.route_key,
        "stage": "$default",
        "time": _request_time(now),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if params:
        event["pathParameters"] = params
    _set_body(event, body)
    return event


def build_event_v1(
    route: Route, params: dict[str, str], environ: dict[str, Any], body: bytes
) -> dict[str, Any]:
    headers, multi = _headers(environ)
    now = dt.datetime.now(dt.UTC)
    method = environ.get("REQUEST_METHOD", "GET")
    raw_query = environ.get("QUERY_STRING", "")
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    event: dict[str, Any] = {
        "version": "1.0",
        "resource": route.path,
        "path": environ.get("PATH_INFO", "/"),
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "httpMethod": method,
            "path": environ.get("PATH_INFO", "/"),
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestId": str(uuid.uuid4()),
            "requestTime": _request_time(now),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourcePath": route.path,
            "stage": "$default",
            "identity": {
                "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                "userAgent": headers.get("user-agent", ""),
            },
        },
    }
    _set_body(event, body)
    event.setdefault("body", None)
    return event


def _set_body(event: dict[str, Any], body: bytes) -> None:
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False


def map_response(result: Any, payload_version: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's return value as API Gateway turns it into an HTTP response."""
    if isinstance(result, dict) and ("statusCode" in result or payload_version == "1.0"):
        status = int(result.get("statusCode", 200))
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(key), str(v)) for v in values)
        for cookie in result.get("cookies") or []:
            headers.append(("Set-Cookie", str(cookie)))
        body = result.get("body")
        if body is None:
            payload = b""
        elif result.get("isBase64Encoded"):
            payload = base64.b64decode(str(body))
        else:
            payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        return status, headers, payload
    payload = (result if isinstance(result, str) else json.dumps(result)).encode()
    return 200, [("Content-Type", "application/json")], payload


class HttpApiServer:
    """Serves every HttpApi/Api route of the template on one local port."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, Any], Any],
        host: str = "127.0.0.1",
        port: int = 3000,
        track: Callable[[int], None] | None = None,
    ) -> None:
        self.routes = routes
        self._invoke = invoke
        self._track = track
        self._server: BaseWSGIServer = make_server(host, port, self, threaded=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="http-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._track is not None:
            self._track(1)
        try:
            status, headers, payload = self._handle(environ)
        finally:
            if self._track is not None:
                self._track(-1)
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_reason(status)}", headers)
        return [payload]

    def _handle(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _json_error(413, "Request Entity Too Large")
        body = environ["wsgi.input"].read(length) if length else b""
        found = match_route(self.routes, method, path)
        if found is None:
            return _json_error(404, "Not Found")
        route, params = found
        builder = build_event_v1 if route.payload_version == "1.0" else build_event_v2
        event = builder(route, params, environ, body)
        try:
            result = self._invoke(route.function, event)
            answer = map_response(result, route.payload_version)
        except InvocationError as exc:
            log.warning("%s %s -> %s failed: %s", method, path, route.function, exc)
            answer = _json_error(500, "Internal Server Error")
        except Exception:
            log.exception("%s %s -> %s: bad response", method, path, route.function)
            answer = _json_error(500, "Internal Server Error")
        log.info(
            "%s %s -> %s %s (%.0f ms)",
            method,
            path,
            route.function,
            answer[0],
            (time.monotonic() - started) * 1000,
        )
        return answer


def _json_error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
