"""`EventPublisher` on EventBridge: PutEvents in requests of at most 10 entries and 256 KB.

Any failed entry, or any client error, is `PublishFailed`. Earlier chunks may already be on
the bus when a later one fails; that is safe because event ids are deterministic and every
consumer dedupes on `event_id`, so the sender's retry republishes the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.events import MAX_ENTRY_BYTES, BusEntry, entry_size
from storewire.errors import PermanentError, PublishFailed

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES_PER_REQUEST = 10


def chunk_entries(
    entries: Sequence[BusEntry],
    *,
    max_entries: int = MAX_ENTRIES_PER_REQUEST,
    max_bytes: int = MAX_ENTRY_BYTES,
) -> Iterator[list[BusEntry]]:
    """Consecutive requests' worth of entries, each within both PutEvents limits."""
    chunk: list[BusEntry] = []
    size = 0
    for entry in entries:
        entry_bytes = entry_size(entry)
        if entry_bytes > max_bytes:
            raise PermanentError(
                f"a {entry['DetailType']} entry is {entry_bytes} bytes, over {max_bytes}:"
                " it should have been claim-checked"
            )
        if chunk and (len(chunk) == max_entries or size + entry_bytes > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_bytes
    if chunk:
        yield chunk


class EventBridgePublisher:
    """Publishes bus entries to one event bus."""

    def __init__(self, client: EventBridgeClient, event_bus_name: str) -> None:
        self._client = client
        self._bus = event_bus_name

    def publish(self, entries: Sequence[BusEntry]) -> None:
        for chunk in chunk_entries(entries):
            request: list[PutEventsRequestEntryTypeDef] = [
                {
                    "Source": e["Source"],
                    "DetailType": e["DetailType"],
                    "Detail": e["Detail"],
                    "EventBusName": self._bus,
                }
                for e in chunk
            ]
            try:
                response = self._client.put_events(Entries=request)
            except (ClientError, BotoCoreError) as error:
                raise PublishFailed(f"PutEvents failed: {error}") from error
            failed = response.get("FailedEntryCount", 0)
            if failed:
                codes = sorted(
                    {r["ErrorCode"] for r in response.get("Entries", []) if r.get("ErrorCode")}
                )
                raise PublishFailed(
                    f"PutEvents rejected {failed} of {len(chunk)} entries: {', '.join(codes)}"
                )
