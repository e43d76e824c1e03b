"""The crm_sync handler: one sync per batch, then Powertools partial batch responses."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from crm_fakes import (
    JANE,
    Context,
    DeadLetters,
    FakeCrm,
    crm_deps,
    customer_event,
    load_app,
    order_event,
    refund_event,
    sqs_records,
)
from storewire.errors import ConfigurationError, RetryableUpstreamError
from storewire.http import Deadline

ANN = "ann@example.com"


@pytest.fixture
def app() -> Iterator[ModuleType]:
    module = load_app()
    module._deps = None
    yield module
    module._deps = None


def handler_deps(app: ModuleType, crm: FakeCrm, dead: DeadLetters, **kw: object) -> object:
    return app.HandlerDeps(crm=crm_deps(crm=crm), dead_letters=dead, **kw)


def test_given_a_batch_when_handled_then_one_upsert_and_no_failures(app: ModuleType) -> None:
    crm, dead = FakeCrm(), DeadLetters()

    response = app.lambda_handler(
        sqs_records(customer_event(), order_event(), order_event("orders/updated")),
        Context(),
        deps=handler_deps(app, crm, dead),
    )

    assert response == {"batchItemFailures": []}
    assert len(crm.calls_to("upsert_contacts")) == 1
    assert dead.sent == []


def test_given_one_invalid_email_then_only_it_is_dead_lettered_and_none_fail(
    app: ModuleType,
) -> None:
    crm, dead = FakeCrm(), DeadLetters()
    crm.refuse = {"jane@example"}

    response = app.lambda_handler(
        sqs_records(
            order_event(delivery_id="a", order=1, email=ANN),
            order_event(delivery_id="b", order=2, email="jane@example"),
            customer_event(),
        ),
        Context(),
        deps=handler_deps(app, crm, dead),
    )

    assert response == {"batchItemFailures": []}
    assert [(d["message_id"], d["error_type"]) for d in dead.sent] == [("msg-1", "InvalidContact")]
    assert "INVALID_EMAIL" in dead.sent[0]["reason"]
    assert sorted(crm.contact_ids) == [ANN, JANE]


def test_given_a_429_beyond_the_time_left_then_every_record_fails_for_sqs(
    app: ModuleType,
) -> None:
    crm, dead = FakeCrm(), DeadLetters()
    crm.fail_next = [
        RetryableUpstreamError("429", service="hubspot", status=429, code="RATE_LIMIT")
    ]

    response = app.lambda_handler(
        sqs_records(customer_event(), order_event()),
        Context(),
        deps=handler_deps(app, crm, dead),
    )

    assert response == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]
    }
    assert dead.sent == []


def test_given_mixed_outcomes_then_failures_name_exactly_the_retryable_records(
    app: ModuleType,
) -> None:
    crm, dead = FakeCrm(), DeadLetters()

    response = app.lambda_handler(
        sqs_records(
            refund_event(),  # its order is not known yet: retried
            "{not json",  # malformed: dead-lettered
            customer_event(),  # synced
        ),
        Context(),
        deps=handler_deps(app, crm, dead),
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert [(d["message_id"], d["error_type"]) for d in dead.sent] == [
        ("msg-1", "MalformedPayload")
    ]


def test_given_the_dlq_send_fails_then_the_record_fails_instead_of_being_lost(
    app: ModuleType,
) -> None:
    class BrokenDlq(DeadLetters):
        def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
            raise RetryableUpstreamError("sqs down", service="sqs")

    response = app.lambda_handler(
        sqs_records("{not json", customer_event()),
        Context(),
        deps=handler_deps(app, FakeCrm(), BrokenDlq()),
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}


def test_given_the_sync_breaks_unexpectedly_then_the_whole_batch_is_retried(
    app: ModuleType,
) -> None:
    class Broken(FakeCrm):
        def upsert_contacts(self, inputs: object) -> object:  # type: ignore[override]
            raise KeyError("bug")

    response = app.lambda_handler(
        sqs_records(customer_event(), order_event()),
        Context(),
        deps=handler_deps(app, Broken(), DeadLetters()),
    )

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["msg-0", "msg-1"]


def test_given_a_context_then_the_deadline_is_the_time_left_minus_the_reserve(
    app: ModuleType,
) -> None:
    deadline = Deadline(clock=lambda: 100.0)

    app.lambda_handler(
        sqs_records(customer_event()),
        Context(remaining_ms=20000),
        deps=handler_deps(app, FakeCrm(), DeadLetters(), deadline=deadline),
    )

    assert deadline.remaining() == pytest.approx(20.0 - app.DEADLINE_RESERVE_SECONDS)


def test_given_missing_settings_then_a_configuration_error_names_them(app: ModuleType) -> None:
    with pytest.raises(ConfigurationError, match="CRM_TABLE_NAME"):
        app.CrmSettings.from_env({"DEAD_LETTER_QUEUE_URL": "q"})


def test_given_settings_then_defaults_are_hubspot_and_usd(app: ModuleType) -> None:
    settings = app.CrmSettings.from_env(
        {
            "CRM_TABLE_NAME": "crm",
            "DEAD_LETTER_QUEUE_URL": "q",
            "HUBSPOT_ACCESS_TOKEN_SECRET_ID": "arn:secret",
        }
    )

    assert settings.hubspot_api_base_url == "https://api.hubapi.com"
    assert settings.crm_currency == "USD"
