"""functions/stock_adjustment/app.py on fakes (sockets off): one record, one unit of work."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakes_orders import InMemoryOrderStore
from fakes_stock import InMemoryStockStore
from ingest_fakes import InMemoryClaimCheckStore
from stock_samples import RecordingPublisher, order_id, payment, placed
from storewire.config import StockSettings
from storewire.domain.events import CanonicalEvent
from storewire.errors import ConfigurationError
from storewire.stock import StockDeps


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        self.sent.append((message_id, error_type, reason))


APP = Path(__file__).resolve().parents[2] / "functions" / "stock_adjustment" / "app.py"


def load_app() -> ModuleType:
    name = "stock_adjustment_app"
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
    store = InMemoryStockStore()
    store.set_on_hand("SKU-A", "default", 3, ref="seed")
    publisher = RecordingPublisher()
    claim_checks = InMemoryClaimCheckStore()
    dead = DeadLetters()
    deps = app.HandlerDeps(
        stock=StockDeps(store=store, publisher=publisher, orders=InMemoryOrderStore()),
        claim_checks=claim_checks,
        dead_letters=dead,
    )
    return {
        "deps": deps,
        "store": store,
        "publisher": publisher,
        "claims": claim_checks,
        "dead": dead,
    }


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


def test_each_record_is_one_unit_of_work_and_only_the_early_payment_fails(
    app: ModuleType, world: dict[str, Any]
) -> None:
    order = placed("1", [("L1", "SKU-A", 2)])

    answer = app.lambda_handler(
        batch(bridge(order), bridge(order), bridge(payment("2"))), None, world["deps"]
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert world["store"].rows[("SKU-A", "default")].available == 1
    assert len(world["publisher"].unique("StockReserved")) == 1


def test_a_malformed_record_is_dead_lettered_at_once_with_its_type(
    app: ModuleType, world: dict[str, Any]
) -> None:
    answer = app.lambda_handler(batch("not json", bridge(payment("1"))), None, world["deps"])

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    ((message_id, error_type, _),) = world["dead"].sent
    assert (message_id, error_type) == ("m-0", "MalformedPayload")


def test_a_claim_checked_order_is_read_from_the_store(
    app: ModuleType, world: dict[str, Any]
) -> None:
    order = placed("1", [("L1", "SKU-A", 1)])
    ref = world["claims"].put("claim-checks/x.json", order.data_json())

    answer = app.lambda_handler(batch(bridge(order.with_claim_check(ref))), None, world["deps"])

    assert answer == {"batchItemFailures": []}
    assert world["store"].order_state(order_id("1")).placed


def test_payment_bodies_are_not_stocks_business(app: ModuleType) -> None:
    # A PaymentConfirmed whose body another version of payment confirmation shaped
    body = bridge(payment("1"))

    event = app.parse_record(body, None)

    assert (event.event_type, event.order_id) == ("PaymentConfirmed", order_id("1"))


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as bad:
        StockSettings.from_env({"EVENT_BUS_NAME": "b"})

    assert "INVENTORY_TABLE_NAME" in bad.value.message
    settings = StockSettings.from_env(
        {"EVENT_BUS_NAME": "b", "INVENTORY_TABLE_NAME": "i", "ORDERS_TABLE_NAME": "o"}
    )
    assert settings.default_location == "default"
