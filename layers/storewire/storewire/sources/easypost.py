"""EasyPost webhooks: verify `X-Hmac-Signature` and normalise tracker updates.

EasyPost signs the raw body with HMAC-SHA256 under the webhook secret, the secret first
normalised to Unicode NFKD and encoded as UTF-8 (what EasyPost's own clients do), and sends
``X-Hmac-Signature: hmac-sha256-hex=<lowercase hex>``. A delivery verifies under the current
or the previous secret (a rotation); every comparison is constant-time. EasyPost's v1
signature carries no timestamp, so there is no replay window to check: duplicates are
dropped on the delivery id, which is the Event id (``evt_...``, the same on EasyPost's
retries).

==================  ===============================================================
EasyPost event      canonical event
==================  ===============================================================
tracker.updated     ShipmentStatusChanged (status mapped to `TrackingStatus`)
tracker.created     ShipmentStatusChanged (the first state of the tracker)
==================  ===============================================================

Every other description (``batch.updated``, ``shipment.invoice.created``, ...) is
acknowledged and ignored. The tracker names its shipment (``shipment_id``), not the order:
the event's `order_id` is null and the consumer resolves the order through the label
store (`LabelStore.find_by_shipment`); `correlation_id` is ``easypost:{shipment or tracker}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from storewire.domain.events import event_id
from storewire.domain.shipments import (
    ShipmentStatusChanged,
    ShipmentStatusData,
    TrackingEvent,
    canonical_tracking_status,
)
from storewire.errors import MalformedPayload, SignatureInvalid
from storewire.sources import Delivery, Headers, Normalised, WebhookSecrets

SOURCE = "easypost"
SIGNATURE_HEADER = "X-Hmac-Signature"
SIGNATURE_PREFIX = "hmac-sha256-hex="
HANDLED_DESCRIPTIONS: frozenset[str] = frozenset({"tracker.updated", "tracker.created"})


# --------------------------------------------------------------------------- signing


def _key(secret: str) -> bytes:
    return unicodedata.normalize("NFKD", secret).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The `X-Hmac-Signature` value EasyPost sends for `body` under `secret`."""
    return SIGNATURE_PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
    """Raise `SignatureInvalid` unless the header matches `body` under a secret."""
    provided = headers.get(SIGNATURE_HEADER)
    if not provided:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    value = provided.strip()
    if value[: len(SIGNATURE_PREFIX)].lower() != SIGNATURE_PREFIX:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} is not {SIGNATURE_PREFIX}<hex>")
    candidate = value[len(SIGNATURE_PREFIX) :].lower().encode("utf-8", errors="replace")
    matched = False
    for secret in secrets.candidates():
        # Compare against every candidate so timing does not reveal which one matched.
        expected = sign(body, secret)[len(SIGNATURE_PREFIX) :].encode()
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


# --------------------------------------------------------------------------- payload models


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _Event(_Payload):
    id: str = Field(pattern=r"^evt_")
    object: str = "Event"
    description: str
    mode: str | None = None
    user_id: str | None = None
    created_at: str | None = None
    previous_attributes: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class _Location(_Payload):
    city: str | None = None
    state: str | None = None
    country: str | None = None


class _Detail(_Payload):
    message: str | None = None
    status: str | None = None
    datetime: str | None = None
    tracking_location: _Location | None = None


class _Tracker(_Payload):
    id: str = Field(pattern=r"^trk_")
    object: str = "Tracker"
    tracking_code: str = Field(min_length=1)
    status: str
    status_detail: str | None = None
    carrier: str | None = None
    shipment_id: str | None = None
    est_delivery_date: str | None = None
    public_url: str | None = None
    updated_at: str
    tracking_details: list[_Detail] = []


def _validate[M: BaseModel](model: type[M], what: str, payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        fields = [".".join(str(p) for p in e["loc"]) or "(body)" for e in problems]
        raise MalformedPayload(
            f"EasyPost {what} does not fit its shape: {', '.join(fields)[:500]}", fields=fields
        ) from None


def _time(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"EasyPost {field} is not a timestamp", fields=[field]) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _decode(body: bytes) -> _Event:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedPayload("EasyPost event body is not valid JSON", fields=["(body)"]) from None
    if not isinstance(payload, dict):
        raise MalformedPayload("EasyPost event body must be a JSON object", fields=["(body)"])
    return _validate(_Event, "event", payload)


# --------------------------------------------------------------------------- normalisation


def normalise_event(event: _Event) -> ShipmentStatusChanged:
    """The ShipmentStatusChanged of a verified `tracker.*` event."""
    tracker = _validate(_Tracker, "tracker", event.result)
    updated_at = _time(tracker.updated_at, "result.updated_at")
    assert updated_at is not None
    latest = tracker.tracking_details[-1] if tracker.tracking_details else None
    previous = (event.previous_attributes or {}).get("status")
    data = ShipmentStatusData(
        tracker_id=tracker.id,
        shipment_id=tracker.shipment_id,
        tracking_code=tracker.tracking_code,
        carrier=tracker.carrier,
        status=canonical_tracking_status(tracker.status),
        carrier_status=tracker.status,
        status_detail=tracker.status_detail,
        previous_carrier_status=str(previous) if previous else None,
        updated_at=updated_at,
        est_delivery_date=_time(tracker.est_delivery_date, "result.est_delivery_date"),
        public_url=tracker.public_url,
        latest=(
            TrackingEvent(
                message=latest.message,
                status=latest.status,
                at=_time(latest.datetime, "result.tracking_details.datetime"),
                city=latest.tracking_location.city if latest.tracking_location else None,
                state=latest.tracking_location.state if latest.tracking_location else None,
                country=latest.tracking_location.country if latest.tracking_location else None,
            )
            if latest
            else None
        ),
    )
    subject = tracker.shipment_id or tracker.id
    return ShipmentStatusChanged(
        event_id=event_id(SOURCE, event.id, "ShipmentStatusChanged", 0),
        occurred_at=updated_at,
        source=SOURCE,
        shop=SOURCE,
        channel=SOURCE,
        order_id=None,
        correlation_id=f"{SOURCE}:{subject}",
        delivery_id=event.id,
        data=data,
    )


# --------------------------------------------------------------------------- the adapter


class EasyPostSource:
    """The `easypost` source adapter (see `storewire.sources.SourceAdapter`)."""

    name = SOURCE

    def describe(self, headers: Headers) -> Delivery:
        # The event id, type and time live in the body; v1 signatures carry no timestamp.
        return Delivery(topic=None, shop=None, delivery_id=None, sent_at=None)

    def verify(self, headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
        verify_signature(headers, body, secrets)

    def normalise(self, headers: Headers, body: bytes) -> Normalised:
        event = _decode(body)
        if event.description not in HANDLED_DESCRIPTIONS:
            return Normalised(
                topic=event.description, shop=SOURCE, delivery_id=event.id, ignored=True
            )
        return Normalised(
            topic=event.description,
            shop=SOURCE,
            delivery_id=event.id,
            events=(normalise_event(event),),
        )


ADAPTER = EasyPostSource()
