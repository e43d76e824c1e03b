"""`storewire.privacy` on an in-memory store: what is found, erased, deleted, and only once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from storewire.domain.crm import contact_key
from storewire.domain.events import (
    CustomerDataRequested,
    CustomerRedactionRequested,
    PrivacyCustomerData,
    ShopRedactionData,
    ShopRedactionRequested,
    event_id,
)
from storewire.privacy import PrivacyDeps, handle_privacy_event

SHOP = "s.myshopify.com"
ORDER = f"shopify:{SHOP}:1001"
OTHER = f"shopify:{SHOP}:10012"
EMAIL = "ada@example.com"
T0 = datetime(2026, 11, 27, tzinfo=UTC)


class MemoryStore:
    bucket = "bucket"

    def __init__(self) -> None:
        self.key_attributes: dict[str, tuple[str, ...]] = {
            "orders": ("pk",),
            "labels": ("pk",),
            "crm": ("pk",),
            "inventory": ("pk", "sk"),
        }
        self.tables: dict[str, list[dict[str, Any]]] = {
            "orders": [
                {"pk": f"ORDER#{ORDER}", "version": 3, "record": json.dumps({"order_id": ORDER})},
                {"pk": f"ORDER#{OTHER}", "version": 1, "record": json.dumps({"order_id": OTHER})},
            ],
            "labels": [
                {
                    "pk": f"LABEL#{ORDER}",
                    "shipping": json.dumps(
                        {
                            "order_id": ORDER,
                            "ship_to": {"name": "Ada Lovelace", "address1": "12 Analytical Row"},
                        }
                    ),
                },
                {"pk": f"LABEL#{OTHER}", "shipping": json.dumps({"ship_to": {"name": "Bob"}})},
            ],
            "crm": [
                {"pk": f"CONTACT#{contact_key(EMAIL)}", "email": EMAIL, "contact_id": "77"},
                {"pk": f"ORDER#{ORDER}", "link": json.dumps({"email": EMAIL})},
            ],
            "inventory": [{"pk": f"LEDGER#{ORDER}", "sk": "1#reserve", "sku": "SW-1"}],
        }
        self.objects_: dict[str, bytes] = {
            "claim-checks/evt_1.json": json.dumps(
                {"external_order_id": "1001", "customer": {"email": EMAIL}}
            ).encode(),
            "claim-checks/evt_2.json": json.dumps({"external_order_id": "2002"}).encode(),
        }
        self.writes = 0

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for table, items in self.tables.items():
            for item in list(items):
                yield table, dict(item)

    def replace(self, table: str, item: dict[str, Any], before: dict[str, Any]) -> None:
        items = self.tables[table]
        items[items.index(before)] = {k: v for k, v in item.items() if v is not None}
        self.writes += 1

    def delete(self, table: str, item: dict[str, Any]) -> None:
        self.tables[table].remove(item)
        self.writes += 1

    def objects(self) -> Iterator[tuple[str, bytes]]:
        yield from list(self.objects_.items())

    def erase_object(self, key: str) -> int:
        return 1 if self.objects_.pop(key, None) is not None else 0

    def put_report(self, key: str, body: bytes) -> bool:
        if key in self.objects_:
            return False
        self.objects_[key] = body
        return True

    def get_object(self, key: str) -> bytes | None:
        return self.objects_.get(key)


class Publisher:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    def publish(self, entries: Any) -> None:
        self.entries.extend(entries)


class Crm:
    def __init__(self) -> None:
        self.contacts = {EMAIL}
        self.calls: list[dict[str, Any]] = []

    def gdpr_delete_contact(
        self, *, email: str | None = None, contact_id: str | None = None
    ) -> bool:
        self.calls.append({"email": email, "contact_id": contact_id})
        if email in self.contacts:
            self.contacts.discard(email)
            return True
        return False


def request(model: Any, orders: tuple[str, ...] = ("1001",), n: int = 0) -> Any:
    name = model.model_fields["event_type"].default
    return model(
        event_id=event_id("shopify", f"d{n}", name, 0),
        occurred_at=T0,
        source="shopify",
        shop=SHOP,
        channel="shopify",
        customer_id=f"shopify:{SHOP}:customer:9",
        correlation_id=f"shopify:{SHOP}:customer:9",
        delivery_id=f"d{n}",
        data=PrivacyCustomerData(
            external_customer_id="9", email=EMAIL, external_order_ids=orders, data_request_id="5"
        ),
    )


def deps(store: MemoryStore, publisher: Publisher | None = None, crm: Crm | None = None) -> Any:
    return PrivacyDeps(store=store, publisher=publisher or Publisher(), crm=crm, clock=lambda: T0)


def dump(store: MemoryStore) -> str:
    return json.dumps(store.tables) + "".join(b.decode() for b in store.objects_.values())


def test_a_data_request_reports_every_table_and_object_once() -> None:
    store, publisher = MemoryStore(), Publisher()

    first = handle_privacy_event(request(CustomerDataRequested, orders=()), deps(store, publisher))
    second = handle_privacy_event(request(CustomerDataRequested, orders=()), deps(store, publisher))

    assert (first.outcome, second.outcome) == ("reported", "already_reported")
    assert first.report_key is not None
    report = json.loads(store.objects_[first.report_key])
    assert report["orders"] == [ORDER]  # found through the CRM link: the request named none
    assert set(report["tables"]) == {"orders", "labels", "crm", "inventory"}
    assert OTHER not in json.dumps(report["tables"])  # 10012 is not 1001
    assert [c["key"] for c in report["claim_checks"]] == ["claim-checks/evt_1.json"]
    ids = {json.loads(e["Detail"])["event_id"] for e in publisher.entries}
    assert len(publisher.entries) == 2
    assert len(ids) == 1


def test_a_redaction_erases_everywhere_and_a_redelivery_does_nothing() -> None:
    store, crm = MemoryStore(), Crm()

    result = handle_privacy_event(request(CustomerRedactionRequested), deps(store, crm=crm))

    text = dump(store)
    for secret in (EMAIL, "Ada Lovelace", "12 Analytical Row", contact_key(EMAIL)):
        assert secret not in text
    assert "Bob" in text  # another customer's label is untouched
    assert "claim-checks/evt_2.json" in store.objects_
    assert store.tables["crm"] == []
    assert store.tables["inventory"] == [
        {"pk": f"LEDGER#{ORDER}", "sk": "1#reserve", "sku": "SW-1"}
    ]
    assert result.outcome == "redacted"
    assert crm.contacts == set()

    writes = store.writes
    again = handle_privacy_event(request(CustomerRedactionRequested, n=1), deps(store, crm=crm))
    assert again.outcome == "already_redacted"
    assert store.writes == writes


def test_a_shop_redaction_deletes_the_shops_items() -> None:
    store = MemoryStore()
    event = ShopRedactionRequested(
        event_id=event_id("shopify", "d9", "ShopRedactionRequested", 0),
        occurred_at=T0,
        source="shopify",
        shop=SHOP,
        channel="shopify",
        correlation_id=f"shopify:{SHOP}",
        delivery_id="d9",
        data=ShopRedactionData(shop_domain=SHOP),
    )
    handle_privacy_event(event, deps(store))
    assert store.tables["orders"] == []
    assert store.tables["inventory"] == []


# --------------------------------------------------------------------------- the handler


def load_privacy_app() -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    name = "privacy_app"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "functions" / "privacy" / "app.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_the_handler_redacts_and_dead_letters_what_is_not_a_privacy_request() -> None:
    from crm_fakes import Context, DeadLetters, sqs_records

    app = load_privacy_app()
    store, crm, dead = MemoryStore(), Crm(), DeadLetters()
    handler_deps = app.HandlerDeps(privacy=deps(store, crm=crm), dead_letters=dead)

    response = app.lambda_handler(
        sqs_records(request(CustomerRedactionRequested), "not json"), Context(), deps=handler_deps
    )

    assert response == {"batchItemFailures": []}
    assert EMAIL not in dump(store)
    assert [d["message_id"] for d in dead.sent] == ["msg-1"]
    assert dead.sent[0]["error_type"] == "MalformedPayload"


def test_a_misshapen_privacy_request_is_dead_lettered_without_quoting_it() -> None:
    from crm_fakes import Context, DeadLetters, sqs_records

    app = load_privacy_app()
    dead = DeadLetters()
    handler_deps = app.HandlerDeps(privacy=deps(MemoryStore(), crm=Crm()), dead_letters=dead)
    misshapen = request(CustomerRedactionRequested).model_dump(mode="json")
    misshapen["data"]["email"] = {"not": EMAIL}  # pydantic would quote the input it refused

    response = app.lambda_handler(sqs_records(json.dumps(misshapen)), Context(), deps=handler_deps)

    assert response == {"batchItemFailures": []}
    assert [(d["error_type"], d["reason"]) for d in dead.sent] == [
        ("MalformedPayload", "not a canonical event: ValidationError")
    ]


def test_the_settings_name_what_is_missing() -> None:
    import pytest
    from storewire.errors import ConfigurationError

    app = load_privacy_app()
    with pytest.raises(ConfigurationError, match="EVENT_BUS_NAME"):
        app.PrivacySettings.from_env({"ORDERS_TABLE_NAME": "o"})
    settings = app.PrivacySettings.from_env(
        {
            "EVENT_BUS_NAME": "bus",
            "CLAIM_CHECK_BUCKET_NAME": "b",
            "DEAD_LETTER_QUEUE_URL": "http://q",
            "ORDERS_TABLE_NAME": "o",
            "CRM_TABLE_NAME": "c",
        }
    )
    assert settings.tables()["crm"] == "c"
