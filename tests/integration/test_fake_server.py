"""The fakes' HTTP server: a client hanging up is routine for a vendor, not an error to print."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
from storewire_local.fakes.hubspot import HubSpotFake

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[HubSpotFake]:
    with HubSpotFake() as server:
        yield server  # type: ignore[misc]


def test_a_client_resetting_mid_request_prints_nothing_and_the_fake_serves_on(
    fake: HubSpotFake, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = fake.url.removeprefix("http://").split(":")
    for _ in range(5):
        with socket.create_connection((host, int(port))) as client:
            client.sendall(b"POST /crm/v3/objects/contacts HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.05)  # the fake's thread is reading the headers
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    answer = httpx.get(f"{fake.url}/_fake/state", timeout=5)
    time.sleep(0.3)  # any traceback of the reset connections has been printed by now

    assert answer.status_code == 200
    assert capsys.readouterr().err == ""
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_fault_of_the_fake_itself_is_still_logged_with_its_traceback(
    fake: HubSpotFake, caplog: pytest.LogCaptureFixture
) -> None:
    assert fake._server is not None
    try:
        raise ValueError("a bug in the fake")
    except ValueError:
        fake._server.handle_error(None, ("127.0.0.1", 1))

    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "storewire.fakes"
    # the traceback, as a handler renders it (a handler elsewhere in the suite may drop
    # exc_info once it has rendered the record)
    assert "ValueError: a bug in the fake" in caplog.text
