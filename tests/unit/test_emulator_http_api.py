"""Route matching, payload v2 events and response mapping, without sockets."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from storewire_local.emulator.http_api import (
    Route,
    build_event_v1,
    build_event_v2,
    compile_path,
    map_response,
    match_route,
    routes_for,
)
from storewire_local.emulator.moto_server import describe_request
from storewire_local.emulator.stack import EventSource, FunctionSpec


def spec(name: str, *events: tuple[str, dict[str, Any]]) -> FunctionSpec:
    return FunctionSpec(
        logical_id=name,
        name=name,
        code_dir=Path("."),
        handler="app.lambda_handler",
        runtime="python3.13",
        timeout=3,
        memory_size=128,
        environment={},
        layer_dirs=[],
        events=[EventSource(f"E{i}", t, p) for i, (t, p) in enumerate(events)],
    )


ROUTES = routes_for(
    [
        spec("Webhook", ("HttpApi", {"Path": "/webhooks/{source}", "Method": "post"})),
        spec("Exact", ("HttpApi", {"Path": "/webhooks/special", "Method": "POST"})),
        spec("Greedy", ("HttpApi", {"Path": "/files/{proxy+}", "Method": "ANY"})),
        spec("Fallback", ("HttpApi", {})),
        spec("Rest", ("Api", {"Path": "/rest/{id}", "Method": "get"})),
    ]
)


def environ(
    method: str, path: str, query: str = "", body: bytes = b"", **headers: str
) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_HOST": "localhost:3000",
    }
    env.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    return env


def test_paths_compile_to_anchored_patterns() -> None:
    regex, params = compile_path("/a/{b}/c/{rest+}")
    assert params == ["b", "rest"]
    match = regex.match("/a/1/c/x/y")
    assert match is not None
    assert regex.match("/a/1/2/c/x") is None


def test_the_most_specific_route_wins() -> None:
    def target(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        found = match_route(ROUTES, method, path)
        return (found[0].function, found[1]) if found else None

    assert target("POST", "/webhooks/shopify") == ("Webhook", {"source": "shopify"})
    assert target("POST", "/webhooks/special") == ("Exact", {})
    assert target("GET", "/files/a/b.txt") == ("Greedy", {"proxy": "a/b.txt"})
    assert target("GET", "/webhooks/shopify") == ("Fallback", {})  # POST only -> $default
    assert target("GET", "/rest/7") == ("Rest", {"id": "7"})


def test_v2_event_shape() -> None:
    route = next(r for r in ROUTES if r.function == "Webhook")
    event = build_event_v2(
        route,
        {"source": "shopify"},
        environ("POST", "/webhooks/shopify", "a=1&a=2", b"{}", X_SHOPIFY_TOPIC="orders/create"),
        b"{}",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/{source}"
    assert event["headers"]["x-shopify-topic"] == "orders/create"
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["requestContext"]["routeKey"] == "POST /webhooks/{source}"
    assert event["requestContext"]["domainName"] == "localhost:3000"
    assert (event["body"], event["isBase64Encoded"]) == ("{}", False)
    binary = build_event_v2(route, {}, environ("POST", "/x"), b"\xff\xfe")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xfe"
    empty = build_event_v2(route, {}, environ("GET", "/x"), b"")
    assert "body" not in empty
    assert "pathParameters" not in empty


def test_v1_event_shape_for_rest_apis() -> None:
    route = next(r for r in ROUTES if r.function == "Rest")
    event = build_event_v1(route, {"id": "7"}, environ("GET", "/rest/7", "q=1&q=2"), b"")
    assert event["httpMethod"] == "GET"
    assert event["resource"] == "/rest/{id}"
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["queryStringParameters"] == {"q": "2"}
    assert event["body"] is None


def test_responses_map_like_api_gateway() -> None:
    status, headers, body = map_response(
        {"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi", "cookies": ["c=1"]}, "2.0"
    )
    assert (status, body) == (201, b"hi")
    assert ("X-A", "1") in headers
    assert ("Set-Cookie", "c=1") in headers
    encoded = map_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True},
        "2.0",
    )
    assert encoded[2] == b"\x00"
    assert map_response({"ok": True}, "2.0") == (
        200,
        [("Content-Type", "application/json")],
        json.dumps({"ok": True}).encode(),
    )
    assert map_response("plain", "2.0")[2] == b"plain"
    assert map_response(None, "2.0")[2] == b"null"


def test_requests_are_attributed_to_service_and_operation() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=testing/20261127/us-east-1/events/aws4_request, X=1"
    json_env = {"HTTP_AUTHORIZATION": auth, "HTTP_X_AMZ_TARGET": "AWSEvents.PutEvents"}
    info = describe_request(json_env, b"{}")
    assert (info.service, info.operation, info.json_protocol) == ("events", "PutEvents", True)
    sqs_auth = auth.replace("/events/", "/sqs/")
    query_env = {
        "HTTP_AUTHORIZATION": sqs_auth,
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
    }
    info = describe_request(query_env, b"Action=SendMessage&QueueUrl=x")
    assert (info.service, info.operation, info.json_protocol) == ("sqs", "SendMessage", False)


def test_route_keys() -> None:
    assert Route("F", "ANY", "$default", "2.0", None, []).route_key == "$default"
    assert next(r for r in ROUTES if r.function == "Greedy").route_key == "ANY /files/{proxy+}"
