"""Fakes and builders for the CRM sync tests (no Mock()).

Events are built by the real Shopify normaliser from the committed samples, so the tests
exercise the shapes production sees. `InMemoryCrmStore` applies the same pure functions as
the DynamoDB adapter; `FakeCrm` is a scripted HubSpot that records every call.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from samples import REPO_ROOT, sample_payload
from storewire.crm import CrmDeps
from storewire.domain.crm import (
    BatchOutcome,
    ContactAggregate,
    CrmInput,
    InputError,
    OrderLink,
    empty,
    normalise_email,
)
from storewire.domain.events import CanonicalEvent, canonical_order_id, event_id, to_bus_entry
from storewire.sources.shopify import normalise_payload

SHOP = "storewire-demo.myshopify.com"
JANE = "jane.doe@example.com"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def order_id(external: str | int = 5745289347382) -> str:
    return canonical_order_id("shopify", SHOP, str(external))


def _event(topic: str, payload: dict[str, Any], delivery_id: str) -> CanonicalEvent:
    (event,) = normalise_payload(
        topic, payload, shop=SHOP, delivery_id=delivery_id, occurred_at=None
    )
    return event


def order_event(
    topic: str = "orders/create",
    delivery_id: str = "wh-order-1",
    *,
    order: int | None = None,
    email: str | None = None,
    total: str | None = None,
    currency: str | None = None,
    created_at: str | None = None,
    updated_at: str | None = None,
    **changes: Any,
) -> CanonicalEvent:
    """An order event (orders/create, orders/updated, orders/cancelled) from the samples."""
    payload = copy.deepcopy(sample_payload(topic))
    if order is not None:
        payload["id"] = order
        payload["name"] = f"#{order % 100000}"
    if email is not None:
        payload["email"] = email
        payload["contact_email"] = email
        if isinstance(payload.get("customer"), dict):
            payload["customer"]["email"] = email
    if total is not None:
        payload["total_price"] = total
    if currency is not None:
        payload["currency"] = currency
        payload["presentment_currency"] = currency
    if created_at is not None:
        payload["created_at"] = created_at
    if updated_at is not None:
        payload["updated_at"] = updated_at
    payload.update(changes)
    return _event(topic, payload, delivery_id)


def customer_event(
    delivery_id: str = "wh-customer-1",
    *,
    email: str = JANE,
    updated_at: str | None = None,
    **changes: Any,
) -> CanonicalEvent:
    payload = copy.deepcopy(sample_payload("customers/create"))
    payload["email"] = email
    if updated_at is not None:
        payload["updated_at"] = updated_at
    payload.update(changes)
    return _event("customers/create", payload, delivery_id)


def refund_event(
    delivery_id: str = "wh-refund-1", *, refund: int | None = None, order: int | None = None
) -> CanonicalEvent:
    payload = copy.deepcopy(sample_payload("refunds/create"))
    if refund is not None:
        payload["id"] = refund
    if order is not None:
        payload["order_id"] = order
    return _event("refunds/create", payload, delivery_id)


def label_event(order: str, delivery_id: str = "label-1") -> CanonicalEvent:
    """A `LabelCreated` envelope (its model lands with label creation; CRM reads the id)."""
    return CanonicalEvent.model_validate(
        {
            "event_id": event_id("labels", delivery_id, "LabelCreated", 0),
            "event_type": "LabelCreated",
            "event_version": 1,
            "occurred_at": NOW,
            "source": "labels",
            "shop": SHOP,
            "channel": "shopify",
            "order_id": order,
            "external_order_id": order.rsplit(":", 1)[-1],
            "correlation_id": order,
            "delivery_id": delivery_id,
            "data": {"tracking_number": "9400100000000000000000"},
        }
    )


class InMemoryCrmStore:
    """`CrmStore` in dicts, with the adapter's rules; `writes` counts contact writes."""

    def __init__(self) -> None:
        self.contacts: dict[str, ContactAggregate] = {}
        self.links: dict[str, OrderLink] = {}
        self.writes = 0
        self.before_mark: Callable[[str], None] | None = None

    def get_contact(self, email: str) -> ContactAggregate | None:
        return self.contacts.get(normalise_email(email))

    def update_contact(
        self, email: str, change: Callable[[ContactAggregate], ContactAggregate | None]
    ) -> ContactAggregate:
        key = normalise_email(email)
        current = self.contacts.get(key)
        base = current if current is not None else empty(key)
        changed = change(base)
        if changed is None:
            if current is not None:
                return base
            changed = base
        updated = changed.model_copy(update={"version": base.version + 1})
        self.contacts[key] = updated
        self.writes += 1
        return updated

    def mark_synced(self, email: str, version: int, contact_id: str) -> bool:
        if self.before_mark is not None:
            hook, self.before_mark = self.before_mark, None
            hook(email)
        key = normalise_email(email)
        current = self.contacts.get(key)
        if current is None or current.version != version:
            return False
        self.contacts[key] = current.model_copy(
            update={"synced_version": version, "contact_id": contact_id}
        )
        return True

    def get_order(self, order_id: str) -> OrderLink | None:
        return self.links.get(order_id)

    def put_order(self, link: OrderLink) -> None:
        self.links[link.order_id] = link


class FakeCrm:
    """A scripted HubSpot: keeps contacts and deals by their unique value, records calls.

    `fail_next` holds errors raised by the next calls (one each); `refuse` holds emails the
    CRM refuses per input (INVALID_EMAIL), as HubSpot's 207 does.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []
        self.contacts: dict[str, dict[str, str]] = {}
        self.contact_ids: dict[str, str] = {}
        self.deals: dict[str, dict[str, str]] = {}
        self.deal_ids: dict[str, str] = {}
        self.associations: set[tuple[str, str]] = set()
        self.fail_next: list[Exception] = []
        self.refuse: set[str] = set()
        self._next = 100

    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def calls_to(self, name: str) -> list[list[Any]]:
        return [inputs for called, inputs in self.calls if called == name]

    def upsert_contacts(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        self.calls.append(("upsert_contacts", list(inputs)))
        self._maybe_fail()
        ids, errors, created = {}, {}, set()
        for item in inputs:
            if item.key in self.refuse:
                errors[item.key] = InputError(
                    key=item.key,
                    category="VALIDATION_ERROR",
                    code="INVALID_EMAIL",
                    message="Email address is invalid",
                )
                continue
            if item.key not in self.contact_ids:
                self.contact_ids[item.key] = self._id()
                created.add(item.key)
            self.contacts.setdefault(item.key, {}).update(item.properties)
            ids[item.key] = self.contact_ids[item.key]
        return BatchOutcome(ids=ids, errors=errors, created=frozenset(created))

    def upsert_deals(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        self.calls.append(("upsert_deals", list(inputs)))
        self._maybe_fail()
        for item in inputs:
            self.deal_ids.setdefault(item.key, self._id())
            self.deals.setdefault(item.key, {}).update(item.properties)
        return BatchOutcome(ids={i.key: self.deal_ids[i.key] for i in inputs})

    def associate_deals(self, pairs: Sequence[tuple[str, str]]) -> BatchOutcome:
        self.calls.append(("associate_deals", list(pairs)))
        self._maybe_fail()
        self.associations.update(pairs)
        return BatchOutcome(ids=dict(pairs))


def crm_deps(
    store: InMemoryCrmStore | None = None, crm: FakeCrm | None = None, **overrides: Any
) -> CrmDeps:
    values: dict[str, Any] = {
        "store": store if store is not None else InMemoryCrmStore(),
        "crm": crm if crm is not None else FakeCrm(),
        "clock": lambda: NOW,
    }
    values.update(overrides)
    return CrmDeps(**values)


def sqs_records(*events: CanonicalEvent | str) -> dict[str, Any]:
    """An SQS event whose records carry the EventBridge envelope of each event (or a raw
    body string), with message ids `msg-0`, `msg-1`..."""
    records = []
    for i, event in enumerate(events):
        if isinstance(event, str):
            body = event
        else:
            entry = to_bus_entry(event)
            body = json.dumps(
                {
                    "version": "0",
                    "id": f"bus-{i}",
                    "detail-type": entry["DetailType"],
                    "source": entry["Source"],
                    "detail": json.loads(entry["Detail"]),
                }
            )
        records.append(
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:crm-sync",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


class DeadLetters:
    """A `DeadLetterSink` that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        self.sent.append(
            {"body": body, "error_type": error_type, "reason": reason, "message_id": message_id}
        )


class Context:
    function_name = "crm-sync"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:crm-sync"
    aws_request_id = "crm-request"

    def __init__(self, remaining_ms: int = 30000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_app(name: str = "crm_sync_app") -> ModuleType:
    """functions/crm_sync/app.py, imported once under `name`."""
    if name not in sys.modules:
        path = REPO_ROOT / "functions" / "crm_sync" / "app.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
