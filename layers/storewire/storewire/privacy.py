"""Privacy: Shopify's compliance webhooks carried out over everything Storewire holds.

=============================  ==============================================================
event                          what happens
=============================  ==============================================================
CustomerDataRequested          every item of every table and every claim-check object that
                               concerns the customer goes into one JSON report, stored at
                               ``privacy/{customer}/{request}.json`` in the claim-check bucket;
                               then `CustomerDataReportReady` says where
CustomerRedactionRequested     personal data (emails, names, phones, addresses, notes) is erased
                               from the customer's items; their CRM items are deleted; their
                               claim-check objects (every version) are deleted; the CRM is asked
                               to delete the contact (HubSpot GDPR delete)
ShopRedactionRequested         every item and object of the shop is deleted
=============================  ==============================================================

What "concerns the customer" means: an item or object that mentions the customer's email,
canonical customer id, one of their orders (canonical id, or `external_order_id`), or whose
key is their CRM contact key. The orders are those the request names plus those found linked
to the email or customer (the CRM's order links), so a request naming no orders still finds
them. Tables are scanned: a privacy request is rare (Shopify allows 30 days), a scan is
bounded by the table, and no index has to be kept on personal data for it.

Each request is idempotent: a second report request finds its report and only re-announces
it (same event id); a second redaction finds nothing left to erase, and the CRM's 404 for a
contact already deleted counts as done. Personal data never reaches a log line here: only
counts and ids are logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from storewire.domain.crm import contact_key
from storewire.domain.events import (
    CanonicalEvent,
    CustomerDataReportData,
    CustomerDataReportReady,
    CustomerDataRequested,
    CustomerRedactionRequested,
    PrivacyCustomerData,
    ShopRedactionData,
    ShopRedactionRequested,
    canonical_order_id,
    event_id,
    to_bus_entry,
)
from storewire.errors import MalformedPayload
from storewire.ports import EventPublisher

logger = logging.getLogger(__name__)

PRIVACY_SOURCE = "privacy"
"""`source` of the events the privacy consumer publishes (`Source: storewire.privacy`)."""

REPORT_PREFIX = "privacy/"
REDACTED = "[redacted]"

ERASE_KEYS: frozenset[str] = frozenset(
    {
        "email",
        "contact_email",
        "customer_email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "firstname",
        "lastname",
        "full_name",
        "company",
        "address1",
        "address2",
        "street1",
        "street2",
        "city",
        "zip",
        "postal_code",
        "note",
        "browser_ip",
        "shipping_address",
        "billing_address",
        "default_address",
        "ship_to",
        "to_address",
        "addresses",
    }
)
"""Keys whose values are personal data, erased wherever they occur in the customer's items."""

ID_KEYS = frozenset({"order_id", "external_order_id", "customer_id", "external_customer_id"})

DELETE_TABLES = frozenset({"crm"})
"""Tables whose items of the customer are deleted rather than anonymised (the CRM mirror)."""


# --------------------------------------------------------------------------- the subject


@dataclass
class Subject:
    """Whose data: a customer of a shop (with their orders), or a whole shop."""

    shop: str
    customer_id: str | None = None
    external_customer_id: str | None = None
    email: str | None = None
    order_ids: set[str] = field(default_factory=set)
    external_order_ids: set[str] = field(default_factory=set)
    whole_shop: bool = False

    @classmethod
    def of(cls, event: CanonicalEvent) -> Subject:
        data = event.data
        if isinstance(data, ShopRedactionData):
            return cls(shop=data.shop_domain or event.shop, whole_shop=True)
        if not isinstance(data, PrivacyCustomerData):
            raise MalformedPayload(f"{event.event_type} {event.event_id} carries no request")
        subject = cls(
            shop=event.shop,
            customer_id=event.customer_id,
            external_customer_id=data.external_customer_id,
            email=data.email.strip().lower() if data.email else None,
        )
        for external in data.external_order_ids:
            subject.add_order(canonical_order_id(event.source, event.shop, external), external)
        return subject

    def add_order(self, order_id: str, external: str | None = None) -> None:
        self.order_ids.add(order_id)
        if external is None and order_id.startswith(f"{order_id.split(':', 1)[0]}:{self.shop}:"):
            external = order_id.rsplit(":", 1)[-1]
        if external:
            self.external_order_ids.add(external)

    def _patterns(self) -> list[re.Pattern[str]]:
        ids = sorted(self.order_ids | ({self.customer_id} if self.customer_id else set()))
        patterns = [re.compile(re.escape(i) + r"(?![0-9A-Za-z])") for i in ids]
        if self.email:
            patterns.append(re.compile(re.escape(self.email), re.IGNORECASE))
            patterns.append(re.compile(re.escape(contact_key(self.email))))
        if self.whole_shop:
            patterns.append(re.compile(re.escape(self.shop), re.IGNORECASE))
        return patterns

    def matcher(self) -> Matcher:
        return Matcher(self, self._patterns())


def _as_json(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class Matcher:
    """Whether a value concerns the subject, and that value with the subject's data erased."""

    def __init__(self, subject: Subject, patterns: list[re.Pattern[str]]) -> None:
        self.subject = subject
        self.patterns = patterns

    def concerns(self, value: Any, key: str | None = None) -> bool:
        if key in ID_KEYS and value is not None and not isinstance(value, dict | list):
            text = str(value)
            if text in self.subject.external_order_ids and key in (
                "external_order_id",
                "order_id",
            ):
                return True
            if self.subject.external_customer_id and text == self.subject.external_customer_id:
                return key == "external_customer_id"
        if isinstance(value, str):
            if any(p.search(value) for p in self.patterns):
                return True
            inner = _as_json(value)
            return inner is not None and self.concerns(inner)
        if isinstance(value, Mapping):
            return any(self.concerns(v, str(k)) for k, v in value.items())
        if isinstance(value, list | tuple | set | frozenset):
            return any(self.concerns(v) for v in value)
        return False

    def order_ids_in(self, value: Any, key: str | None = None) -> set[str]:
        """Canonical order ids mentioned in `value` (keys `ORDER#{id}`, fields `order_id`)."""
        found: set[str] = set()
        if isinstance(value, str):
            if key == "order_id" and value.count(":") >= 2:
                found.add(value)
            for match in re.finditer(r"ORDER#([^#\s\"]+)", value):
                found.add(match.group(1))
            inner = _as_json(value)
            if inner is not None:
                found |= self.order_ids_in(inner)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                found |= self.order_ids_in(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                found |= self.order_ids_in(v)
        return {f for f in found if f"{self.subject.shop}:" in f}

    def erase(self, value: Any, key: str | None = None) -> Any:
        """`value` with personal data erased: by key, then the email wherever it appears."""
        if key is not None and key.lower() in ERASE_KEYS:
            if isinstance(value, str) and value not in ("", REDACTED):
                return None if "email" in key.lower() else REDACTED
            if isinstance(value, Mapping | list) and value:
                return None
            return value
        if isinstance(value, str):
            inner = _as_json(value)
            if inner is not None:
                erased = self.erase(inner)
                return value if erased == inner else json.dumps(erased, separators=(",", ":"))
            if self.subject.email and self.subject.email in value.lower():
                return re.sub(re.escape(self.subject.email), REDACTED, value, flags=re.IGNORECASE)
            return value
        if isinstance(value, Mapping):
            return {k: self.erase(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.erase(v) for v in value]
        return value


# --------------------------------------------------------------------------- the ports


class PrivacyStore(Protocol):
    """Every table and claim-check object Storewire owns, as plain values."""

    bucket: str
    key_attributes: dict[str, tuple[str, ...]]
    """Per table role, the names of its key attributes (never rewritten)."""

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every item of every table, as (table role, item with plain Python values)."""
        ...

    def replace(self, table: str, item: dict[str, Any], before: dict[str, Any]) -> None:
        """Write `item` over the item read as `before` (`RetryableError` if it changed)."""
        ...

    def delete(self, table: str, item: dict[str, Any]) -> None: ...

    def objects(self) -> Iterator[tuple[str, bytes]]:
        """Every object of the claim-check bucket: (key, the current version's body)."""
        ...

    def erase_object(self, key: str) -> int:
        """Delete every version of `key`; the number of versions deleted."""
        ...

    def put_report(self, key: str, body: bytes) -> bool:
        """Store a report unless one is there already; True if written."""
        ...

    def get_object(self, key: str) -> bytes | None: ...


class CrmEraser(Protocol):
    def gdpr_delete_contact(
        self, *, email: str | None = None, contact_id: str | None = None
    ) -> bool: ...


@dataclass(frozen=True)
class PrivacyDeps:
    store: PrivacyStore
    publisher: EventPublisher
    crm: CrmEraser | None = None
    clock: Any = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class PrivacyResult:
    outcome: str
    items: int = 0
    changed: int = 0
    deleted: int = 0
    objects: int = 0
    crm_deleted: bool = False
    report_key: str | None = None


# --------------------------------------------------------------------------- the work


def _expand(subject: Subject, store: PrivacyStore) -> list[tuple[str, dict[str, Any]]]:
    """The subject's items, after adding the orders found linked to the customer."""
    for _ in range(2):
        matcher = subject.matcher()
        matched = [(t, i) for t, i in store.items() if matcher.concerns(i)]
        before = set(subject.order_ids)
        if not subject.whole_shop:
            for table, item in matched:
                if table == "crm" or table == "orders":
                    for order_id in matcher.order_ids_in(item):
                        subject.add_order(order_id)
        if subject.order_ids == before:
            return matched
    matcher = subject.matcher()
    return [(t, i) for t, i in store.items() if matcher.concerns(i)]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        inner = _as_json(value)
        return inner if inner is not None else value
    return value


def report_key(event: CanonicalEvent, subject: Subject) -> str:
    data = event.data
    who = hashlib.sha256((subject.customer_id or subject.email or "").encode()).hexdigest()[:24]
    request = (
        data.data_request_id if isinstance(data, PrivacyCustomerData) else None
    ) or event.event_id
    return f"{REPORT_PREFIX}{who}/{request}.json"


def assemble_report(event: CanonicalEvent, deps: PrivacyDeps) -> PrivacyResult:
    """`customers/data_request`: the report of everything held on the customer, once."""
    subject = Subject.of(event)
    key = report_key(event, subject)
    body = deps.store.get_object(key)
    outcome = "already_reported"
    if body is None:
        matched = _expand(subject, deps.store)
        matcher = subject.matcher()
        tables: dict[str, list[Any]] = {}
        for table, item in matched:
            tables.setdefault(table, []).append(_plain(item))
        claim_checks = []
        for object_key, blob in deps.store.objects():
            if object_key.startswith(REPORT_PREFIX):
                continue
            text = blob.decode("utf-8", errors="replace")
            parsed = _as_json(text)
            if matcher.concerns(parsed if parsed is not None else text):
                claim_checks.append({"key": object_key, "body": parsed or text})
        report = {
            "request": {
                "shop": subject.shop,
                "customer_id": subject.customer_id,
                "external_customer_id": subject.external_customer_id,
                "email": subject.email,
                "data_request_id": getattr(event.data, "data_request_id", None),
                "event_id": event.event_id,
            },
            "generated_at": deps.clock().isoformat(),
            "orders": sorted(subject.order_ids),
            "tables": tables,
            "claim_checks": claim_checks,
            "notes": {
                "dedupe": "holds delivery ids and event ids only",
                "channels": "holds SKUs and channel quantities only",
            },
        }
        body = json.dumps(report, indent=2, sort_keys=True, default=str).encode()
        if deps.store.put_report(key, body):
            outcome = "reported"
        else:
            body = deps.store.get_object(key) or body
    parsed_report = json.loads(body)
    orders = len(parsed_report.get("orders", []))
    deps.publisher.publish(
        [to_bus_entry(report_ready(event, deps.store.bucket, key, body, orders))]
    )
    logger.info("privacy report %s", outcome, extra={"orders": orders, "report_key": key})
    return PrivacyResult(outcome, items=orders, report_key=key)


def report_ready(
    cause: CanonicalEvent, bucket: str, key: str, body: bytes, orders: int
) -> CustomerDataReportReady:
    return CustomerDataReportReady(
        event_id=event_id(PRIVACY_SOURCE, cause.event_id, "CustomerDataReportReady", 0),
        occurred_at=cause.occurred_at,
        source=PRIVACY_SOURCE,
        shop=cause.shop,
        channel=cause.channel,
        customer_id=cause.customer_id,
        correlation_id=cause.correlation_id,
        delivery_id=cause.event_id,
        data=CustomerDataReportData(
            bucket=bucket,
            key=key,
            data_request_id=getattr(cause.data, "data_request_id", None),
            orders=orders,
            sha256=hashlib.sha256(body).hexdigest(),
        ),
    )


def redact(event: CanonicalEvent, deps: PrivacyDeps) -> PrivacyResult:
    """`customers/redact` and `shop/redact`: erase, delete, and ask the CRM to forget."""
    subject = Subject.of(event)
    matched = _expand(subject, deps.store)
    matcher = subject.matcher()
    changed = deleted = 0
    crm_contact_ids: set[str] = set()
    for table, item in matched:
        if subject.whole_shop or table in DELETE_TABLES:
            if table == "crm" and isinstance(item.get("contact_id"), str):
                crm_contact_ids.add(item["contact_id"])
            deps.store.delete(table, item)
            deleted += 1
            continue
        keys = deps.store.key_attributes.get(table, ())
        erased = {k: (v if k in keys else matcher.erase(v, k)) for k, v in item.items()}
        if erased != item:
            deps.store.replace(table, erased, item)
            changed += 1
    objects = 0
    for object_key, blob in list(deps.store.objects()):
        text = blob.decode("utf-8", errors="replace")
        parsed = _as_json(text)
        if matcher.concerns(parsed if parsed is not None else text):
            objects += deps.store.erase_object(object_key)
    crm_deleted = False
    if deps.crm is not None and not subject.whole_shop:
        if subject.email:
            crm_deleted = deps.crm.gdpr_delete_contact(email=subject.email)
        for contact_id in sorted(crm_contact_ids):
            crm_deleted |= deps.crm.gdpr_delete_contact(contact_id=contact_id)
    outcome = "redacted" if (changed or deleted or objects or crm_deleted) else "already_redacted"
    logger.info(
        "privacy %s",
        outcome,
        extra={"items": len(matched), "changed": changed, "deleted": deleted, "objects": objects},
    )
    return PrivacyResult(
        outcome,
        items=len(matched),
        changed=changed,
        deleted=deleted,
        objects=objects,
        crm_deleted=crm_deleted,
    )


def handle_privacy_event(event: CanonicalEvent, deps: PrivacyDeps) -> PrivacyResult:
    """Dispatch one canonical event; any other type is ignored."""
    if isinstance(event, CustomerDataRequested):
        return assemble_report(event, deps)
    if isinstance(event, CustomerRedactionRequested | ShopRedactionRequested):
        return redact(event, deps)
    return PrivacyResult("ignored")
