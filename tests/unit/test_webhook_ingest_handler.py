from __future__ import annotations

import base64
import io
import json
from types import ModuleType
from typing import Any

import pytest
from ingest_fakes import Fakes
from samples import sample_event


class LambdaContext:
    aws_request_id = "6f1c1d2e-0000-4000-8000-000000000001"
    function_name = "webhook_ingest"


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"] == {"content-type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def test_given_a_signed_order_when_handled_then_200_with_the_event_ids(
    webhook_app: ModuleType,
) -> None:
    fakes = Fakes()

    status, body = answer(
        webhook_app.lambda_handler(sample_event("orders/create"), LambdaContext(), fakes.deps())
    )

    assert status == 200
    assert body == {"status": "accepted", "events": fakes.publisher.event_ids}
    assert len(body["events"]) == 1


def test_given_the_same_delivery_twice_when_handled_then_the_second_is_a_duplicate(
    webhook_app: ModuleType,
) -> None:
    fakes = Fakes()
    event = sample_event("orders/create")

    webhook_app.lambda_handler(event, LambdaContext(), fakes.deps())
    status, body = answer(webhook_app.lambda_handler(event, LambdaContext(), fakes.deps()))

    assert (status, body) == (200, {"status": "duplicate"})
    assert len(fakes.publisher.published) == 1


def test_given_a_base64_body_when_handled_then_the_raw_bytes_are_verified(
    webhook_app: ModuleType,
) -> None:
    fakes = Fakes()
    event = sample_event("customers/create")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    status, _ = answer(webhook_app.lambda_handler(event, LambdaContext(), fakes.deps()))

    assert status == 200


def test_given_invalid_base64_when_handled_then_400(webhook_app: ModuleType) -> None:
    event = sample_event("customers/create") | {"body": "%%%", "isBase64Encoded": True}

    status, body = answer(webhook_app.lambda_handler(event, LambdaContext(), Fakes().deps()))

    assert status == 400
    assert body["error"]["type"] == "MalformedPayload"


@pytest.mark.parametrize(
    ("mutate", "status", "error_type"),
    [
        (lambda e: e | {"body": e["body"].replace("29.00", "0.01")}, 401, "SignatureInvalid"),
        (
            lambda e: e | {"headers": {k: v for k, v in e["headers"].items() if "hmac" not in k}},
            401,
            "SignatureInvalid",
        ),
        (lambda e: e | {"pathParameters": {"source": "magento"}}, 404, "UnknownSource"),
        (lambda e: e | {"pathParameters": None}, 404, "UnknownSource"),
    ],
)
def test_given_a_bad_request_when_handled_then_the_error_type_decides_the_status(
    webhook_app: ModuleType, mutate: Any, status: int, error_type: str
) -> None:
    fakes = Fakes()

    got_status, body = answer(
        webhook_app.lambda_handler(
            mutate(sample_event("orders/create")), LambdaContext(), fakes.deps()
        )
    )

    assert got_status == status
    assert body["error"]["type"] == error_type
    assert body["error"]["message"]
    assert fakes.publisher.published == []


def test_given_a_body_over_the_limit_when_handled_then_413(webhook_app: ModuleType) -> None:
    fakes = Fakes()

    status, body = answer(
        webhook_app.lambda_handler(
            sample_event("orders/create"), LambdaContext(), fakes.deps(max_body_bytes=1000)
        )
    )

    assert (status, body["error"]["type"]) == (413, "PayloadTooLarge")


def test_given_the_bus_is_down_when_handled_then_503_and_a_retry_gets_200(
    webhook_app: ModuleType,
) -> None:
    fakes = Fakes()
    fakes.publisher.fail_next = 1
    event = sample_event("refunds/create")

    first, _ = answer(webhook_app.lambda_handler(event, LambdaContext(), fakes.deps()))
    second, body = answer(webhook_app.lambda_handler(event, LambdaContext(), fakes.deps()))

    assert (first, second) == (503, 200)
    assert body["events"] == fakes.publisher.event_ids


def test_given_an_unexpected_bug_when_handled_then_500_without_details(
    webhook_app: ModuleType,
) -> None:
    class BrokenPublisher:
        def publish(self, entries: Any) -> None:
            raise ZeroDivisionError("secret internals")

    fakes = Fakes()

    status, body = answer(
        webhook_app.lambda_handler(
            sample_event("orders/create"), LambdaContext(), fakes.deps(publisher=BrokenPublisher())
        )
    )

    assert status == 500
    assert body["error"]["type"] == "InternalError"
    assert "secret internals" not in json.dumps(body)
    assert fakes.dedupe.records == {}  # the claim was released


def test_given_no_environment_when_handled_without_deps_then_500_configuration_error(
    webhook_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EVENT_BUS_NAME", "DEDUPE_TABLE_NAME", "CLAIM_CHECK_BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)

    status, body = answer(webhook_app.lambda_handler(sample_event("orders/create"), None))

    assert status == 500
    assert body["error"]["type"] == "ConfigurationError"
    assert "EVENT_BUS_NAME" in body["error"]["message"]


def test_given_a_delivery_when_logged_then_ids_are_there_but_no_personal_data_or_body(
    webhook_app: ModuleType,
) -> None:
    sink = io.StringIO()
    previous = webhook_app.logger.registered_handler.setStream(sink)
    event = sample_event("orders/create")

    webhook_app.lambda_handler(event, LambdaContext(), Fakes().deps())
    tampered = event | {"body": event["body"].replace("Jane", "Eve")}
    webhook_app.lambda_handler(tampered, LambdaContext(), Fakes().deps())

    webhook_app.logger.registered_handler.setStream(previous)
    logs = sink.getvalue()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert [r["outcome"] for r in records] == ["accepted", "SignatureInvalid"]
    assert records[0]["delivery_id"] == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert records[0]["topic"] == "orders/create"
    assert records[0]["shop"] == "storewire-demo.myshopify.com"
    assert records[0]["request_id"] == LambdaContext.aws_request_id
    for secret_or_pii in (
        "jane.doe@example.com",
        "Jane",
        "Atlantic",
        "+17185550142",
        "shpss_storewire_dev_secret",
        event["headers"]["x-shopify-hmac-sha256"],
        "SW-TEE-BLK-M",
    ):
        assert secret_or_pii not in logs


def test_given_a_cold_start_when_the_handler_is_imported_then_boto3_is_not() -> None:
    import subprocess
    import sys

    from samples import REPO_ROOT

    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/webhook_ingest/app.py')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in ('boto3', 'httpx', 'pydantic_settings') if m in sys.modules))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
