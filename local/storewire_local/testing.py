"""Test helpers for code that drives a running :class:`Emulator` (used by tests/e2e)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .emulator import Emulator


class EmulatorHandle:
    """What a test needs from a running emulator."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.api_url = emu.api_url
        self.aws_endpoint_url = emu.aws_endpoint_url
        self.session = emu.session()
        self.http = httpx.Client(base_url=emu.api_url, timeout=30)

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.emu.client(service, **kwargs)

    def resource(self, logical_id: str) -> str:
        return self.emu.physical_resources()[logical_id]

    def queue_url(self, logical_id: str) -> str:
        return self.emu.queue_url(logical_id)

    def peek(self, logical_id: str) -> list[dict[str, Any]]:
        return self.emu.peek_queue(logical_id)

    def peek_bodies(self, logical_id: str) -> list[Any]:
        return [json.loads(m["body"]) for m in self.peek(logical_id)]

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        return self.emu.drain_queue(logical_id)

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        found = self.emu.recorded_events()
        return [e for e in found if detail_type in (None, e.get("detail-type"))]

    def wait_idle(self, timeout: float = 20.0) -> None:
        self.emu.wait_idle(timeout)

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.aws_endpoint_url}/_storewire/{path}", **kwargs)

    def fault(self, service: str, operation: str, status: int = 500, count: int | None = 1) -> None:
        answer = self.control(
            "POST",
            "faults",
            json={"service": service, "operation": operation, "status": status, "count": count},
        )
        answer.raise_for_status()

    def clear_faults(self) -> None:
        self.control("DELETE", "faults").raise_for_status()


def item_text(item: dict[str, Any]) -> str:
    """A DynamoDB item (low-level form) as one JSON text that tests can search.

    Binary values are shown as what they hold: the order record's ``record_z`` is
    zlib-compressed JSON, so a search for personal data must look inside it; other binaries
    as base64.
    """
    import base64
    import zlib

    def readable(value: Any) -> Any:
        if isinstance(value, bytes):
            try:
                return zlib.decompress(value).decode()
            except (zlib.error, UnicodeDecodeError):
                return base64.b64encode(value).decode()
        if isinstance(value, dict):
            return {k: readable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [readable(v) for v in value]
        return value

    return json.dumps(readable(item), sort_keys=True)
