"""`Carrier` on the EasyPost API (or the local EasyPost fake: only `base_url` differs).

* Auth: HTTP Basic with the API key as the username and no password (what EasyPost's
  clients send).
* ``POST /v2/shipments`` ``{"shipment": {to_address, from_address, parcel, reference}}``
  -> the shipment with ``rates[]`` (and ``messages[]`` for carriers that failed to rate).
* ``POST /v2/shipments/{id}/buy`` ``{"rate": {"id": ...}}`` -> the shipment with
  ``selected_rate``, ``tracking_code``, ``postage_label.label_url`` and ``tracker``.
  EasyPost sells one label per shipment: a second buy is 422 ``SHIPMENT.POSTAGE.EXISTS``.
  That makes the buy safe to resend after a lost answer (the shared `HttpClient` retries it
  on 5xx, timeouts and dropped connections), and the adapter answers that 422 with the
  shipment as bought.
* ``GET /v2/shipments/{id}``; ``GET /v2/shipments?page_size&start_datetime&before_id``
  (newest first, ``has_more``), filtered here by ``reference`` (the fake also filters
  server-side on a ``reference`` parameter; EasyPost ignores it).
* Errors: ``{"error": {"code", "message", "errors": [{"field", "message"}]}}``; the vendor
  code becomes the typed error's `code`, the field errors go into its message. 4xx (but
  408/409/429) are `PermanentUpstreamError`, e.g. a to_address EasyPost cannot use (422).

Weights are ounces and dimensions inches, sent as JSON numbers (they are not money); rate
amounts arrive as decimal strings and become `Money`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from storewire.domain.events import Address
from storewire.domain.money import Money
from storewire.domain.shipments import CarrierShipment, Parcel, Rate, ShipmentRequest
from storewire.errors import PermanentUpstreamError
from storewire.http import HttpClient

DEFAULT_BASE_URL = "https://api.easypost.com"
SERVICE = "easypost"
POSTAGE_EXISTS = "SHIPMENT.POSTAGE.EXISTS"
PAGE_SIZE = 100
MAX_PAGES = 5


def describe_easypost_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message with field errors) from EasyPost's error object; tolerant of junk."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, f"HTTP {response.status_code}"
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {response.status_code}")
    details: list[str] = []
    for item in error.get("errors") or []:
        if isinstance(item, dict):
            details.append(f"{item.get('field')}: {item.get('message')}")
        elif isinstance(item, str):
            details.append(item)
    if details:
        message = f"{message} ({'; '.join(details)})"
    return (str(code) if code else None), message[:500]


def basic_auth(api_key: str) -> str:
    """The `Authorization` value EasyPost expects: Basic, key as username, no password."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()


def address_payload(address: Address) -> dict[str, Any]:
    """An EasyPost address from a canonical one (personal data: never logged)."""
    payload = {
        "name": address.name,
        "company": address.company,
        "street1": address.address1,
        "street2": address.address2,
        "city": address.city,
        "state": address.province_code,
        "zip": address.zip,
        "country": address.country_code,
        "phone": address.phone,
    }
    return {k: v for k, v in payload.items() if v}


def parcel_payload(parcel: Parcel) -> dict[str, Any]:
    return {
        "length": float(parcel.length),
        "width": float(parcel.width),
        "height": float(parcel.height),
        "weight": float(parcel.weight_oz),
    }


def shipment_payload(request: ShipmentRequest) -> dict[str, Any]:
    """The body of ``POST /v2/shipments``."""
    return {
        "shipment": {
            "reference": request.reference,
            "to_address": address_payload(request.to_address),
            "from_address": address_payload(request.from_address),
            "parcel": parcel_payload(request.parcel),
        }
    }


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_rate(raw: dict[str, Any]) -> Rate:
    """A `Rate` from an EasyPost rate object (amount is a decimal string)."""
    try:
        amount = Money.parse(Decimal(str(raw["rate"])), str(raw.get("currency") or "USD"))
        days = raw.get("delivery_days")
        return Rate(
            rate_id=str(raw["id"]),
            carrier=str(raw["carrier"]),
            service=str(raw["service"]),
            amount=amount,
            delivery_days=int(days) if days is not None else None,
        )
    except (KeyError, InvalidOperation, ValueError, TypeError) as error:
        raise PermanentUpstreamError(
            f"EasyPost sent an unusable rate: {str(error)[:200]}", service=SERVICE
        ) from error


def parse_shipment(raw: Any) -> CarrierShipment:
    """A `CarrierShipment` from an EasyPost shipment object."""
    if not isinstance(raw, dict) or not str(raw.get("id", "")).startswith("shp_"):
        raise PermanentUpstreamError("EasyPost answered without a shipment", service=SERVICE)
    label = raw.get("postage_label") or {}
    tracker = raw.get("tracker") or {}
    selected = raw.get("selected_rate")
    messages = [
        f"{m.get('carrier')}: {m.get('message')}"
        for m in raw.get("messages") or []
        if isinstance(m, dict)
    ]
    return CarrierShipment(
        shipment_id=str(raw["id"]),
        reference=raw.get("reference") or None,
        rates=tuple(parse_rate(r) for r in raw.get("rates") or [] if isinstance(r, dict)),
        selected_rate=parse_rate(selected) if isinstance(selected, dict) else None,
        tracking_code=raw.get("tracking_code") or None,
        label_url=label.get("label_url") if isinstance(label, dict) else None,
        tracker_id=tracker.get("id") if isinstance(tracker, dict) else None,
        messages=tuple(messages),
        created_at=_timestamp(raw.get("created_at")),
    )


class EasyPostCarrier:
    """EasyPost shipments through the shared HTTP client."""

    name = "easypost"

    def __init__(self, http: HttpClient, api_key: str, *, base_url: str = DEFAULT_BASE_URL) -> None:
        self._http = http
        self._auth = basic_auth(api_key)
        self._base = base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self._auth, "Content-Type": "application/json"}

    def create_shipment(self, request: ShipmentRequest) -> CarrierShipment:
        # Resending a create at worst leaves an unbought duplicate (free); it is found by
        # reference and never bought twice, so transient failures are retried.
        response = self._http.request(
            "POST",
            f"{self._base}/v2/shipments",
            headers=self._headers(),
            json=shipment_payload(request),
            idempotent=True,
        )
        return parse_shipment(response.json())

    def get_shipment(self, shipment_id: str) -> CarrierShipment:
        _check_id(shipment_id)
        response = self._http.request(
            "GET", f"{self._base}/v2/shipments/{shipment_id}", headers=self._headers()
        )
        return parse_shipment(response.json())

    def find_shipments(self, reference: str, *, since: datetime | None) -> list[CarrierShipment]:
        found: list[CarrierShipment] = []
        params: dict[str, str] = {"page_size": str(PAGE_SIZE), "reference": reference}
        if since is not None:
            params["start_datetime"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        for _ in range(MAX_PAGES):
            response = self._http.request(
                "GET", f"{self._base}/v2/shipments", headers=self._headers(), params=params
            )
            body: Any = response.json()
            page = body.get("shipments") if isinstance(body, dict) else None
            if not isinstance(page, list) or not page:
                break
            shipments = [parse_shipment(raw) for raw in page]
            found.extend(s for s in shipments if s.reference == reference)
            if not body.get("has_more"):
                break
            params = {**params, "before_id": shipments[-1].shipment_id}
        return found

    def buy(self, shipment_id: str, rate_id: str) -> CarrierShipment:
        _check_id(shipment_id)
        try:
            response = self._http.request(
                "POST",
                f"{self._base}/v2/shipments/{shipment_id}/buy",
                headers=self._headers(),
                json={"rate": {"id": rate_id}},
                # EasyPost sells one label per shipment, so a resent buy cannot buy twice.
                idempotent=True,
            )
        except PermanentUpstreamError as error:
            if error.code == POSTAGE_EXISTS:
                return self.get_shipment(shipment_id)
            raise
        return parse_shipment(response.json())


def _check_id(shipment_id: str) -> None:
    if not shipment_id.startswith("shp_") or "/" in shipment_id:
        raise PermanentUpstreamError(
            f"not an EasyPost shipment id: {shipment_id!r}", service=SERVICE
        )
