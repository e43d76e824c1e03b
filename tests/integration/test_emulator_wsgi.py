"""The emulator's loopback HTTP/1.1 server (moto's front): what AWS SDKs send, on raw sockets."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from storewire_local.emulator.wsgi import LoopbackServer


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers with what it saw; `/boom` raises; `/count` counts calls."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    body = environ["wsgi.input"].read()
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "raw_uri": environ["RAW_URI"],
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "amz_target": environ.get("HTTP_X_AMZ_TARGET"),
        "repeated": environ.get("HTTP_X_REPEATED"),
        "body": body.decode("latin-1"),
    }
    CALLS.append(seen)
    payload = json.dumps(seen).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", "999")],  # wrong on purpose
    )
    return [payload[:10], b"", payload[10:]]


CALLS: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    CALLS.clear()
    running = LoopbackServer(echo_app, name="test-wsgi")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def connect(server: LoopbackServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def ask(sock: socket.socket, request_bytes: bytes) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(request_bytes)
    return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    reader = sock.makefile("rb")
    status = int(reader.readline().split(b" ")[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return status, headers, body


def test_given_keep_alive_then_requests_share_one_connection_and_bodies_are_exact(
    server: LoopbackServer,
) -> None:
    sock = connect(server)
    for n in range(3):
        payload = json.dumps({"n": n}).encode()
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        status, headers, body = read_response(sock)
        assert status == 200
        assert int(headers["content-length"]) == len(body)  # not the app's wrong 999
        seen = json.loads(body)
        assert seen["body"] == payload.decode()
        assert seen["amz_target"] == "DynamoDB_20120810.PutItem"
        assert seen["content_type"] == "application/x-amz-json-1.0"
    sock.close()
    assert len(CALLS) == 3


def test_given_a_quoted_path_then_path_info_is_decoded_and_raw_uri_kept(
    server: LoopbackServer,
) -> None:
    sock = connect(server)
    _, _, body = ask(sock, b"GET /bucket/a%20b/c%2Fd?list-type=2&x=%41 HTTP/1.1\r\nHost: x\r\n\r\n")
    seen = json.loads(body)
    assert seen["path"] == "/bucket/a b/c/d"
    assert seen["raw_uri"] == "/bucket/a%20b/c%2Fd?list-type=2&x=%41"
    assert seen["query"] == "list-type=2&x=%41"
    assert seen["content_length"] == "0"


def test_given_expect_100_continue_then_the_interim_answer_comes_before_the_body(
    server: LoopbackServer,
) -> None:
    sock = connect(server)
    sock.sendall(
        b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # boto3 waits 1 s without it
    sock.sendall(b"hello")
    status, _, body = read_response(sock)
    assert status == 200
    assert json.loads(body)["body"] == "hello"


def test_given_a_chunked_body_then_the_app_sees_it_whole_with_its_length(
    server: LoopbackServer,
) -> None:
    sock = connect(server)
    _, _, body = ask(
        sock,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    seen = json.loads(body)
    assert seen["body"] == "hello world"
    assert seen["content_length"] == "11"


def test_given_repeated_headers_then_they_are_joined(server: LoopbackServer) -> None:
    sock = connect(server)
    _, _, body = ask(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Repeated: a\r\nX-Repeated: b\r\n\r\n")
    assert json.loads(body)["repeated"] == "a, b"


@pytest.mark.parametrize(
    ("request_bytes", "keeps"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_connection_persistence_follows_the_protocol_version_and_header(
    server: LoopbackServer, request_bytes: bytes, keeps: bool
) -> None:
    sock = connect(server)
    status, headers, _ = ask(sock, request_bytes)
    assert status == 200
    assert (headers.get("connection") == "close") is not keeps
    if not keeps:
        assert sock.recv(1) == b""  # the server closed it


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET / SPDY/3\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 201 + b"\r\n", 431),
    ],
)
def test_given_a_malformed_request_then_400_and_the_app_never_runs(
    server: LoopbackServer, request_bytes: bytes, status: int
) -> None:
    sock = connect(server)
    got, headers, _ = ask(sock, request_bytes)
    assert got == status
    assert headers["connection"] == "close"
    assert CALLS == []


def test_given_the_app_raises_then_500_and_the_server_goes_on(server: LoopbackServer) -> None:
    sock = connect(server)
    status, _, _ = ask(sock, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 500
    again = connect(server)
    assert ask(again, b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_given_a_head_request_then_no_body_follows(server: LoopbackServer) -> None:
    sock = connect(server)
    sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"HTTP/1.1 200")
    while reader.readline() != b"\r\n":
        pass
    # the next bytes are the second answer, not a body for the first
    assert reader.readline().startswith(b"HTTP/1.1 200")


def test_stop_closes_idle_keep_alive_connections(server: LoopbackServer) -> None:
    sock = connect(server)
    ask(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive()
    assert sock.recv(1) == b""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1)


def test_boto3_clients_work_through_it_including_s3_uploads() -> None:
    """boto3 end to end, through moto: JSON, query and REST protocols, 100-continue uploads."""
    import boto3
    from storewire_local.emulator.moto_server import MotoServer

    moto = MotoServer()
    moto.start()
    try:
        options: dict[str, Any] = {
            "endpoint_url": moto.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        s3 = boto3.client("s3", **options)
        s3.create_bucket(Bucket="storewire-test")
        s3.put_object(Bucket="storewire-test", Key="a b/c%2Fd", Body=b"x" * 200_000)
        got = s3.get_object(Bucket="storewire-test", Key="a b/c%2Fd")
        assert got["Body"].read() == b"x" * 200_000
        assert s3.head_object(Bucket="storewire-test", Key="a b/c%2Fd")["ContentLength"] == 200_000
        sqs = boto3.client("sqs", **options)
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hi")
        assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hi"
    finally:
        moto.stop()
