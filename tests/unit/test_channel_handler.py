"""functions/channel_sync/app.py on fakes (sockets off): coalescing per batch, DLQ, retries."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from channel_fakes import ITEM, LOCATION, FakeChannel, InMemoryListingStore, level_event, listing
from storewire.channels import ChannelDeps
from storewire.config import ChannelSyncSettings
from storewire.domain.events import CanonicalEvent
from storewire.errors import ConfigurationError, RetryableError

APP = Path(__file__).resolve().parents[2] / "functions" / "channel_sync" / "app.py"
OTHER_ITEM = "gid://shopify/InventoryItem/202"


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        self.sent.append((message_id, error_type, reason))


def load_app() -> ModuleType:
    name = "channel_sync_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


@pytest.fixture
def world(app: ModuleType) -> dict[str, Any]:
    store = InMemoryListingStore(listing("SKU-1"), listing("SKU-2", item=OTHER_ITEM))
    channel = FakeChannel()
    channel.behind_our_back(ITEM, 10)
    channel.behind_our_back(OTHER_ITEM, 10)
    dead = DeadLetters()
    deps = app.HandlerDeps(
        channels=ChannelDeps(listings=store, channels={"shopify": channel}),
        dead_letters=dead,
    )
    return {"deps": deps, "store": store, "channel": channel, "dead": dead}


def bridge(event: CanonicalEvent) -> str:
    return json.dumps(
        {"detail-type": event.event_type, "detail": json.loads(event.model_dump_json())}
    )


def batch(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def test_a_batch_pushes_only_the_newest_level_of_each_sku(
    app: ModuleType, world: dict[str, Any]
) -> None:
    answer = app.lambda_handler(
        batch(
            bridge(level_event("SKU-1", 3, 8)),
            bridge(level_event("SKU-1", 6, 5)),
            bridge(level_event("SKU-2", 2, 4)),
            bridge(level_event("SKU-1", 4, 7)),
        ),
        None,
        world["deps"],
    )

    assert answer == {"batchItemFailures": []}
    channel: FakeChannel = world["channel"]
    assert channel.sets == [(ITEM, 5, 10), (OTHER_ITEM, 4, 10)]
    assert channel.levels[(ITEM, LOCATION)] == 5
    assert world["store"].listings("SKU-1")[0].pushed_version == 6


def test_a_refused_listing_is_dead_lettered_with_its_reason_and_the_batch_goes_on(
    app: ModuleType, world: dict[str, Any]
) -> None:
    world["channel"].refuse.add(OTHER_ITEM)

    answer = app.lambda_handler(
        batch(bridge(level_event("SKU-2", 2, 4)), bridge(level_event("SKU-1", 2, 3))),
        None,
        world["deps"],
    )

    assert answer == {"batchItemFailures": []}
    ((message_id, error_type, reason),) = world["dead"].sent
    assert (message_id, error_type) == ("m-0", "ChannelPushFailed")
    assert "SKU-2@2" in reason
    assert world["channel"].levels[(ITEM, LOCATION)] == 3


def test_a_retryable_failure_fails_only_its_record(app: ModuleType, world: dict[str, Any]) -> None:
    store: InMemoryListingStore = world["store"]

    def broken(sku: str) -> list[Any]:
        if sku == "SKU-2":
            raise RetryableError("DynamoDB is throttling")
        return InMemoryListingStore.listings(store, sku)

    store.listings = broken  # type: ignore[method-assign]

    answer = app.lambda_handler(
        batch(bridge(level_event("SKU-2", 2, 4)), bridge(level_event("SKU-1", 2, 3))),
        None,
        world["deps"],
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert world["dead"].sent == []


def test_a_malformed_record_is_dead_lettered_and_does_not_stop_coalescing(
    app: ModuleType, world: dict[str, Any]
) -> None:
    answer = app.lambda_handler(
        batch("not json", bridge(level_event("SKU-1", 2, 3)), bridge(level_event("SKU-1", 1, 9))),
        None,
        world["deps"],
    )

    assert answer == {"batchItemFailures": []}
    assert [(m, t) for m, t, _ in world["dead"].sent] == [("m-0", "MalformedPayload")]
    assert world["channel"].sets == [(ITEM, 3, 10)]


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="CHANNEL_LISTINGS_TABLE_NAME"):
        ChannelSyncSettings.from_env({"SHOPIFY_ADMIN_TOKEN_SECRET_ID": "arn"})
    settings = ChannelSyncSettings.from_env(
        {"CHANNEL_LISTINGS_TABLE_NAME": "t", "SHOPIFY_ADMIN_TOKEN_SECRET_ID": "arn"}
    )
    assert settings.shopify_api_version == "2026-04"
