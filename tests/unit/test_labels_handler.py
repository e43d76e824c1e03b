"""functions/label_creation/app.py on hand-written fakes: parsing, partial batches, the DLQ."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from fakes_labels import (
    ORDER_ID,
    Clock,
    FakeCarrier,
    InMemoryLabelStore,
    deps,
    load_app,
    order_data,
    order_placed,
    stock_committed,
)
from stock_samples import RecordingPublisher
from storewire.domain.events import CanonicalEvent, to_bus_entry
from storewire.errors import ConfigurationError


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        self.sent.append(
            {"body": body, "error_type": error_type, "reason": reason, "message_id": message_id}
        )


class Context:
    function_name = "label-creation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:label-creation"
    aws_request_id = "unit"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def app() -> ModuleType:
    module = load_app()
    module._deps = None
    return module


def bridge(event: CanonicalEvent) -> str:
    entry = to_bus_entry(event)
    return json.dumps(
        {
            "version": "0",
            "id": "bus-1",
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "detail": json.loads(entry["Detail"]),
        }
    )


def batch(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"rh-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:label-creation",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


class Wired:
    def __init__(self, app: ModuleType) -> None:
        self.clock = Clock()
        self.carrier = FakeCarrier(self.clock)
        self.store = InMemoryLabelStore()
        self.publisher = RecordingPublisher()
        self.dead = DeadLetters()
        self.deps = app.HandlerDeps(
            labels=deps(self.carrier, self.store, self.publisher, self.clock),
            dead_letters=self.dead,
        )


def test_given_an_order_and_its_commit_when_handled_then_one_label_and_no_failures(
    app: ModuleType,
) -> None:
    wired = Wired(app)

    answer = app.lambda_handler(
        batch(bridge(order_placed()), bridge(stock_committed()), bridge(stock_committed())),
        Context(),
        deps=wired.deps,
    )

    assert answer == {"batchItemFailures": []}
    assert len(wired.carrier.purchases) == 1
    assert [d["event_id"] for d in wired.publisher.details("LabelCreated")] == [
        wired.publisher.details("LabelCreated")[0]["event_id"]
    ]


def test_given_a_commit_before_its_order_when_handled_then_only_it_is_retried(
    app: ModuleType,
) -> None:
    wired = Wired(app)

    answer = app.lambda_handler(batch(bridge(stock_committed())), Context(), deps=wired.deps)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert wired.dead.sent == []


def test_given_an_order_without_an_address_when_committed_then_dead_lettered_with_the_reason(
    app: ModuleType,
) -> None:
    wired = Wired(app)
    app.lambda_handler(
        batch(bridge(order_placed(order_data(ship_to=None)))), Context(), deps=wired.deps
    )

    answer = app.lambda_handler(batch(bridge(stock_committed())), Context(), deps=wired.deps)

    assert answer == {"batchItemFailures": []}
    (dead,) = wired.dead.sent
    assert dead["error_type"] == "InvalidShipment"
    assert "no shipping address" in dead["reason"]
    assert json.loads(dead["body"])["detail"]["order_id"] == ORDER_ID
    assert wired.carrier.purchases == []


def test_given_a_body_that_is_not_an_event_when_handled_then_dead_lettered(
    app: ModuleType,
) -> None:
    wired = Wired(app)

    answer = app.lambda_handler(batch("{not json"), Context(), deps=wired.deps)

    assert answer == {"batchItemFailures": []}
    assert [d["error_type"] for d in wired.dead.sent] == ["MalformedPayload"]


def test_given_the_environment_when_settings_are_read_then_json_policies_are_parsed(
    app: ModuleType,
) -> None:
    settings = app.LabelSettings.from_env(
        {
            "EVENT_BUS_NAME": "bus",
            "LABELS_TABLE_NAME": "labels",
            "EASYPOST_API_KEY_SECRET_ID": "arn:secret",
            "SHIP_FROM_ADDRESS": json.dumps(
                {"name": "W", "address1": "1 Main St", "city": "SF", "zip": "94104"}
            ),
            "LABEL_RATE_POLICY": json.dumps(
                {"mode": "fixed", "carrier": "UPS", "service": "Ground"}
            ),
            "DEFAULT_PARCEL": json.dumps({"default_weight_oz": "8", "tare_grams": 50}),
        }
    )

    policies = settings.policies()
    assert policies.ship_from.address1 == "1 Main St"
    assert policies.rates.mode == "fixed"
    assert policies.parcel.tare_grams == 50
    assert settings.easypost_api_base_url == "https://api.easypost.com"


@pytest.mark.parametrize(
    "broken",
    [
        {"SHIP_FROM_ADDRESS": "{not json"},
        {"LABEL_RATE_POLICY": json.dumps({"mode": "fixed", "carrier": "UPS"})},
        {"EASYPOST_API_KEY_SECRET_ID": ""},
    ],
)
def test_given_a_bad_environment_when_settings_are_read_then_configuration_error(
    app: ModuleType, broken: dict[str, str]
) -> None:
    env = {
        "EVENT_BUS_NAME": "bus",
        "LABELS_TABLE_NAME": "labels",
        "EASYPOST_API_KEY_SECRET_ID": "arn:secret",
        "SHIP_FROM_ADDRESS": json.dumps({"address1": "1 Main St"}),
        **broken,
    }
    with pytest.raises(ConfigurationError, match="label_creation"):
        app.LabelSettings.from_env(env)
