"""Observability: the EMF metrics a consumer emits, the order id on every log line, the HTTP
latency hook, and the template's dashboard and alarms (docs/observability.md)."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest
from fakes_orders import InMemoryOrderStore
from fakes_stock import InMemoryStockStore
from ingest_fakes import InMemoryClaimCheckStore
from stock_samples import RecordingPublisher, order_id, payment, placed
from storewire import http as storewire_http
from storewire.domain.events import CanonicalEvent
from storewire.http import HttpClient
from storewire.observability import (
    DEAD_LETTERED,
    DUPLICATES,
    NAMESPACE,
    PROCESSED,
    RETRIED,
    THIRD_PARTY_LATENCY,
    ConsumerTelemetry,
)
from storewire.stock import StockDeps
from storewire_local.emulator.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "functions" / "stock_adjustment" / "app.py"


# ------------------------------------------------------------------ helpers


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        self.sent.append(message_id)


def load_app() -> ModuleType:
    name = "stock_adjustment_app"  # shared with test_stock_handler: one module, one logger
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    docs = []
    for line in stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            docs.append(doc)
    return docs


def metric_totals(docs: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


@pytest.fixture
def deps(app: ModuleType) -> Any:
    store = InMemoryStockStore()
    store.set_on_hand("SKU-A", "default", 10, ref="seed")
    return app.HandlerDeps(
        stock=StockDeps(store=store, publisher=RecordingPublisher(), orders=InMemoryOrderStore()),
        claim_checks=InMemoryClaimCheckStore(),
        dead_letters=DeadLetters(),
    )


# ------------------------------------------------------------------ metrics


def test_a_consumer_batch_emits_processed_retried_and_dead_lettered_in_the_storewire_namespace(
    app: ModuleType, deps: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    order = placed("1", [("L1", "SKU-A", 2)])

    answer = app.lambda_handler(batch(bridge(order), "not json", bridge(payment("2"))), None, deps)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    docs = emf_documents(capsys.readouterr().out)
    assert docs, "no EMF document was printed"
    totals = metric_totals(docs)
    assert totals[PROCESSED] == 1
    assert totals[DEAD_LETTERED] == 1
    assert totals[RETRIED] == 1
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        assert directive["Dimensions"] == [["service"]]
        assert doc["service"] == "stock_adjustment"


def test_duplicates_and_third_party_latency_are_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    telemetry = ConsumerTelemetry("label_creation", logging.getLogger("test-telemetry"))  # type: ignore[arg-type]

    telemetry.processed("created")
    telemetry.processed("already_created")
    telemetry.observe_http("easypost", "POST", 200, 0.25)
    telemetry.flush()

    docs = emf_documents(capsys.readouterr().out)
    totals = metric_totals(docs)
    assert totals[PROCESSED] == 2
    assert totals[DUPLICATES] == 1
    assert totals[THIRD_PARTY_LATENCY] == pytest.approx(250.0)
    units = {
        m["Name"]: m["Unit"] for d in docs for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert units[THIRD_PARTY_LATENCY] == "Milliseconds"


def test_the_http_client_reports_every_attempt_to_its_observer() -> None:
    seen: list[tuple[str, str, int | None]] = []
    answers = iter([httpx.Response(503), httpx.Response(200, json={})])
    client = HttpClient(
        httpx.Client(transport=httpx.MockTransport(lambda request: next(answers))),
        service="stripe",
        sleep=lambda seconds: None,
        observer=lambda service, method, status, seconds: seen.append((service, method, status)),
    )

    client.request("GET", "https://api.stripe.test/v1/payment_intents/pi_1")

    assert seen == [("stripe", "GET", 503), ("stripe", "GET", 200)]


def test_the_process_wide_observer_serves_clients_built_without_one() -> None:
    seen: list[float] = []
    storewire_http.set_observer(lambda service, method, status, seconds: seen.append(seconds))
    try:
        client = HttpClient(
            httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200))),
            service="hubspot",
        )
        client.request("GET", "https://api.hubapi.test/crm/v3/objects/contacts")
    finally:
        storewire_http.set_observer(None)
    assert len(seen) == 1
    assert seen[0] >= 0


def test_a_failing_observer_never_fails_the_call() -> None:
    def broken(service: str, method: str, status: int | None, seconds: float) -> None:
        raise RuntimeError("metrics down")

    client = HttpClient(
        httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200))),
        service="shopify_admin",
        observer=broken,
    )
    assert client.request("GET", "https://shop.test/admin").status_code == 200


# ------------------------------------------------------------------ logs


def test_every_log_line_of_a_record_carries_its_order_id_and_none_leaks_to_the_next(
    app: ModuleType, deps: Any
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(app.logger.registered_formatter)
    target = logging.getLogger(app.logger.name)
    target.addHandler(handler)
    first = placed("1", [("L1", "SKU-A", 1)])
    second = placed("2", [("L1", "SKU-A", 1)])
    try:
        app.lambda_handler(batch(bridge(first), bridge(second), "not json"), None, deps)
    finally:
        target.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    by_message: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_message.setdefault(line.get("message_id", "?"), []).append(line)
    assert set(by_message) >= {"m-0", "m-1", "m-2"}, lines
    for message_id, external in (("m-0", "1"), ("m-1", "2")):
        for line in by_message[message_id]:
            assert line["order_id"] == order_id(external), line
            assert line["correlation_id"] == order_id(external), line
    # the malformed record names no order, and does not inherit the previous record's
    for line in by_message["m-2"]:
        assert "order_id" not in line, line
        assert "correlation_id" not in line, line


def test_bind_body_reads_ids_without_validating() -> None:
    keys: dict[str, Any] = {}
    fake = SimpleNamespace(
        append_keys=lambda **k: keys.update(k),
        remove_keys=lambda names: [keys.pop(n, None) for n in names],
    )
    telemetry = ConsumerTelemetry("crm_sync", fake)  # type: ignore[arg-type]
    body = json.dumps({"detail-type": "X", "detail": {"event_id": "e1", "order_id": "o1"}})

    telemetry.begin_record("m-1")
    telemetry.bind_body(body)
    assert keys == {"message_id": "m-1", "event_id": "e1", "order_id": "o1", "correlation_id": "o1"}
    telemetry.begin_record("m-2")
    telemetry.bind_body("not json")
    assert keys == {"message_id": "m-2"}


# ------------------------------------------------------------------ template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(load_template(ROOT / "template.yaml")["Resources"])


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r.get("Type") == kind}


def _alarm_targets(resources: dict[str, Any], metric: str) -> set[str]:
    """Logical ids of the queues named by the alarms on `metric`."""
    targets = set()
    for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") != metric:
            continue
        for dimension in props.get("Dimensions") or []:
            value = dimension["Value"]
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                targets.add(target[0] if isinstance(target, list) else target.split(".")[0])
    return targets


def _queues(resources: dict[str, Any]) -> tuple[set[str], set[str]]:
    queues = _of_type(resources, "AWS::SQS::Queue")
    dlqs = {
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in queues.values()
        if "RedrivePolicy" in r.get("Properties", {})
    }
    consumer = {n for n, r in queues.items() if "RedrivePolicy" in r.get("Properties", {})}
    return consumer, dlqs


def test_every_consumer_queue_has_an_age_of_oldest_message_alarm(
    resources: dict[str, Any],
) -> None:
    consumer, _ = _queues(resources)
    assert consumer
    assert consumer <= _alarm_targets(resources, "ApproximateAgeOfOldestMessage")


def test_every_dlq_has_a_depth_alarm(resources: dict[str, Any]) -> None:
    _, dlqs = _queues(resources)
    assert dlqs
    assert dlqs <= _alarm_targets(resources, "ApproximateNumberOfMessagesVisible")


def test_every_alarm_notifies_the_alarm_topic(resources: dict[str, Any]) -> None:
    for name, alarm in _of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert "AlarmTopicArn" in json.dumps(alarm["Properties"].get("AlarmActions")), name


def test_the_dashboard_references_every_function_and_the_metrics(
    resources: dict[str, Any],
) -> None:
    (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    json.loads(body)  # ${...} substitutions sit inside JSON strings: the body stays JSON
    for function in _of_type(resources, "AWS::Serverless::Function"):
        assert "${" + function + "}" in body, function
    for metric in (PROCESSED, DEAD_LETTERED, DUPLICATES, THIRD_PARTY_LATENCY):
        assert f'"{NAMESPACE}","{metric}"' in body, metric
    assert "ReconciliationCorrections" in body
