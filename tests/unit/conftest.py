"""Unit tests run without network: every socket is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _sockets_disabled() -> Iterator[None]:
    disable_socket(allow_unix_socket=False)
    yield
    enable_socket()
