from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from storewire.adapters.eventbridge import EventBridgePublisher, chunk_entries
from storewire.domain.events import MAX_ENTRY_BYTES, BusEntry, entry_size
from storewire.errors import PermanentError, PublishFailed


class FakeEventsClient:
    """Records PutEvents requests; fails entries or raises when told to."""

    def __init__(self, fail_entries: int = 0, raise_error: bool = False) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.fail_entries = fail_entries
        self.raise_error = raise_error

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.raise_error:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "bus gone"}},
                "PutEvents",
            )
        assert len(Entries) <= 10
        assert sum(entry_size(e) for e in Entries) <= MAX_ENTRY_BYTES  # type: ignore[arg-type]
        self.requests.append(Entries)
        failed = min(self.fail_entries, len(Entries))
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _ in range(failed)
        ] + [{"EventId": f"eb-{i}"} for i in range(len(Entries) - failed)]
        return {"FailedEntryCount": failed, "Entries": results}


def entry(i: int, detail_bytes: int = 100) -> BusEntry:
    padding = "x" * max(0, detail_bytes - 40)
    return BusEntry(
        Source="storewire.shopify",
        DetailType="OrderPlaced",
        Detail=json.dumps({"event_id": f"evt_{i:032d}", "pad": padding}),
    )


def test_given_25_small_entries_when_published_then_requests_hold_10_10_and_5() -> None:
    client = FakeEventsClient()

    EventBridgePublisher(client, "storewire-test").publish([entry(i) for i in range(25)])  # type: ignore[arg-type]

    assert [len(r) for r in client.requests] == [10, 10, 5]
    assert all(e["EventBusName"] == "storewire-test" for r in client.requests for e in r)
    sent = [json.loads(e["Detail"])["event_id"] for r in client.requests for e in r]
    assert sent == [f"evt_{i:032d}" for i in range(25)]


def test_given_100_kb_entries_when_published_then_no_request_exceeds_256_kb() -> None:
    client = FakeEventsClient()

    EventBridgePublisher(client, "bus").publish([entry(i, 100_000) for i in range(5)])  # type: ignore[arg-type]

    assert [len(r) for r in client.requests] == [2, 2, 1]


def test_given_entries_exactly_filling_256_kb_when_chunked_then_they_share_one_request() -> None:
    overhead = entry_size(entry(0, 0)) - len(entry(0, 0)["Detail"])
    half = entry(0, 0)
    target = MAX_ENTRY_BYTES // 2 - overhead
    half = BusEntry(Source=half["Source"], DetailType=half["DetailType"], Detail="x" * target)

    chunks = list(chunk_entries([half, half, half]))

    assert [len(c) for c in chunks] == [2, 1]
    assert sum(entry_size(e) for e in chunks[0]) == MAX_ENTRY_BYTES


def test_given_an_entry_over_256_kb_when_chunked_then_it_is_refused() -> None:
    with pytest.raises(PermanentError, match="claim-checked"):
        list(chunk_entries([entry(0, MAX_ENTRY_BYTES + 1)]))


def test_given_nothing_to_publish_when_published_then_no_request_is_made() -> None:
    client = FakeEventsClient()

    EventBridgePublisher(client, "bus").publish([])  # type: ignore[arg-type]

    assert client.requests == []


def test_given_a_failed_entry_when_published_then_publish_failed() -> None:
    client = FakeEventsClient(fail_entries=1)

    with pytest.raises(PublishFailed, match="InternalFailure"):
        EventBridgePublisher(client, "bus").publish([entry(i) for i in range(3)])  # type: ignore[arg-type]


def test_given_a_client_error_when_published_then_publish_failed() -> None:
    client = FakeEventsClient(raise_error=True)

    with pytest.raises(PublishFailed, match="ResourceNotFound"):
        EventBridgePublisher(client, "bus").publish([entry(0)])  # type: ignore[arg-type]
