"""A local EasyPost: addresses, parcels, shipments with rates, purchases and trackers.

Speaks EasyPost's v2 request/response shapes (JSON bodies wrapped in the object name, ids
``<prefix>_`` + 32 hex), with Basic auth: the API key is the username, no password (Bearer
is accepted too). The key is ``EASYPOST_API_KEY`` (development default
``EZTK_storewire_dev_key``); any other key is 401. Errors are EasyPost's
``{"error": {"code", "message", "errors": [{"field", "message"}]}}``.

* ``POST /v2/addresses`` ``{"address": {...}}``; ``GET /v2/addresses/{id}``.
* ``POST /v2/parcels`` ``{"parcel": {length, width, height, weight}}``; weight (oz) required.
* ``POST /v2/shipments`` ``{"shipment": {to_address, from_address, parcel, reference}}``:
  addresses and parcel inline or as ``{"id": ...}``. A to/from address without ``street1``,
  ``city``, ``zip`` or ``country`` (or a US one without ``state``), or a parcel without a
  positive ``weight``, is 422 ``PARAMETER.REQUIRED`` naming the field. A to_address whose
  ``street1`` contains ``UNDELIVERABLE`` is 422 ``ADDRESS.VERIFY.FAILURE`` (a test hook).
  Rates: USPS GroundAdvantage/Priority/Express, UPS Ground/2ndDayAir/NextDayAir, FedEx
  FEDEX_GROUND/FEDEX_2_DAY, priced from weight and distance, exact decimal strings.
* ``GET /v2/shipments/{id or reference}``; ``GET /v2/shipments`` (newest first,
  ``page_size``, ``before_id``, ``start_datetime``, ``purchased``, and - a fake-only filter -
  ``reference``) -> ``{"shipments": [...], "has_more": bool}``.
* ``POST /v2/shipments/{id}/buy`` ``{"rate": {"id"}}`` -> the bought shipment
  (``selected_rate``, ``tracking_code``, ``postage_label.label_url``, ``tracker``). A second
  buy is 422 ``SHIPMENT.POSTAGE.EXISTS``; a rate of another shipment 422.
* ``POST /v2/trackers`` ``{"tracker": {tracking_code, carrier}}`` (EasyPost's test codes
  ``EZ1000000001``...``EZ7000000007`` give pre_transit ... unknown); ``GET /v2/trackers/{id}``;
  ``GET /v2/trackers?tracking_code=``.
* ``GET /files/postage_label/{id}.png``: a tiny PNG, so label URLs resolve.

Control plane (besides the faults of `FakeServer`, e.g. ``{"mode": "drop", "path":
"/v2/shipments/shp_x/buy"}`` buys and then drops the connection):

* ``POST /_fake/webhooks`` ``{"url", "secret"}``: deliver signed events there (EasyPost's
  ``X-Hmac-Signature: hmac-sha256-hex=...``, secret NFKD-normalised, default
  ``EASYPOST_WEBHOOK_SECRET`` or ``whsec_storewire_easypost_dev``).
* ``POST /_fake/trackers/{id}`` ``{"status", "status_detail"?, "message"?, "updated_at"?,
  "times"?: 1}``: the tracker moves on and a ``tracker.updated`` Event is delivered
  (synchronously, ``times`` times with the same Event id); answers the event and the
  delivery statuses.
* ``POST /_fake/events/{id}/deliver`` ``{"times"?: 1}``: deliver a stored Event again.
* ``GET /_fake/state``: addresses, shipments, trackers, ``purchases`` (one entry per label
  sold), events and deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import unicodedata
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

import httpx

from .base import FakeRequest, FakeResponse, FakeServer

DEFAULT_API_KEY = "EZTK_storewire_dev_key"
DEFAULT_WEBHOOK_SECRET = "whsec_storewire_easypost_dev"  # noqa: S105 - the public dev default

# A 1x1 transparent PNG.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

# (carrier, service, base, per pound, per zone step, delivery days)
_SERVICES: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("USPS", "GroundAdvantage", "4.75", "0.55", "0.20", 4),
    ("USPS", "Priority", "8.70", "0.95", "0.45", 2),
    ("USPS", "Express", "28.75", "1.80", "0.90", 1),
    ("UPS", "Ground", "9.85", "0.70", "0.35", 4),
    ("UPS", "2ndDayAir", "19.40", "1.60", "0.80", 2),
    ("UPS", "NextDayAir", "34.90", "2.40", "1.20", 1),
    ("FedEx", "FEDEX_GROUND", "9.45", "0.72", "0.33", 4),
    ("FedEx", "FEDEX_2_DAY", "21.10", "1.55", "0.75", 2),
)

_TEST_TRACKING_CODES = {
    "EZ1000000001": "pre_transit",
    "EZ2000000002": "in_transit",
    "EZ3000000003": "out_for_delivery",
    "EZ4000000004": "delivered",
    "EZ5000000005": "return_to_sender",
    "EZ6000000006": "failure",
    "EZ7000000007": "unknown",
}

_ADDRESS_FIELDS = (
    "name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email",
)  # fmt: skip


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def sign_body(body: bytes, secret: str) -> str:
    """The `X-Hmac-Signature` EasyPost sends: HMAC-SHA256 hex under the NFKD secret."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _error(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> FakeResponse:
    return FakeResponse(
        status, {"error": {"code": code, "message": message, "errors": list(errors or [])}}
    )


def _required(field: str) -> FakeResponse:
    return _error(
        422,
        "PARAMETER.REQUIRED",
        "Missing required parameter.",
        [{"field": field, "message": "cannot be blank"}],
    )


class EasyPostFake(FakeServer):
    name = "easypost"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.default_webhook_secret = webhook_secret
        self.addresses: dict[str, dict[str, Any]] = {}
        self.parcels: dict[str, dict[str, Any]] = {}
        self.shipments: dict[str, dict[str, Any]] = {}
        self.trackers: dict[str, dict[str, Any]] = {}
        self.purchases: list[dict[str, Any]] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.webhook_url: str | None = None
        self.webhook_secret = webhook_secret

    # -- vendor-shaped faults

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        return _error(status, "INTERNAL_SERVER_ERROR", "We're sorry, something went wrong.")

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        return _error(429, "RATE_LIMITED", "You have exceeded the rate limit.")

    # -- auth

    def _authorised(self, request: FakeRequest) -> FakeResponse | None:
        value = request.header("authorization")
        key = ""
        if value.startswith("Basic "):
            try:
                key = base64.b64decode(value[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif value.startswith("Bearer "):
            key = value[len("Bearer ") :].strip()
        if not key:
            return _error(401, "UNAUTHORIZED", "No API key was provided.")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return _error(401, "UNAUTHORIZED", "The API key provided is invalid.")
        return None

    # -- the API

    def handle(self, request: FakeRequest) -> FakeResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["files", "postage_label"] and request.method == "GET":
            return FakeResponse(200, _PNG, {"Content-Type": "image/png"})
        denied = self._authorised(request)
        if denied is not None:
            return denied
        if parts[:1] != ["v2"]:
            return _error(404, "NOT_FOUND", "The requested resource could not be found.")
        try:
            body = request.json() if request.method in ("POST", "PUT", "PATCH") else {}
        except ValueError:
            return _error(400, "BAD_REQUEST", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST", "The request body must be a JSON object.")
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        with self.lock:
            return self._route(request.method, parts[1:], body, query)

    def _route(
        self, method: str, parts: list[str], body: dict[str, Any], query: dict[str, str]
    ) -> FakeResponse:
        match (method, parts):
            case ("POST", ["addresses"]):
                return self._create_address(body.get("address"))
            case ("GET", ["addresses", address_id]):
                return self._found(self.addresses.get(address_id))
            case ("POST", ["parcels"]):
                parcel = self._parcel(body.get("parcel"), "parcel")
                return parcel if isinstance(parcel, FakeResponse) else FakeResponse(201, parcel)
            case ("POST", ["shipments"]):
                return self._create_shipment(body.get("shipment"))
            case ("GET", ["shipments"]):
                return self._list_shipments(query)
            case ("GET", ["shipments", ref]):
                return self._found(self._shipment(ref))
            case ("POST", ["shipments", shipment_id, "buy"]):
                return self._buy(shipment_id, body)
            case ("POST", ["trackers"]):
                return self._create_tracker(body.get("tracker"))
            case ("GET", ["trackers"]):
                code = query.get("tracking_code")
                found = [t for t in self.trackers.values() if code in (None, t["tracking_code"])]
                return FakeResponse(200, {"trackers": _copy(found[::-1]), "has_more": False})
            case ("GET", ["trackers", tracker_id]):
                return self._found(self.trackers.get(tracker_id))
        return _error(404, "NOT_FOUND", "The requested resource could not be found.")

    def _found(self, obj: dict[str, Any] | None) -> FakeResponse:
        if obj is None:
            return _error(404, "NOT_FOUND", "The requested resource could not be found.")
        return FakeResponse(200, _copy(obj))

    def _shipment(self, ref: str) -> dict[str, Any] | None:
        if ref in self.shipments:
            return self.shipments[ref]
        tagged = [s for s in self.shipments.values() if s.get("reference") == ref]
        return tagged[-1] if tagged else None

    # -- addresses and parcels

    def _address(self, raw: Any, field: str) -> dict[str, Any] | FakeResponse:
        if isinstance(raw, dict) and raw.get("id") and set(raw) == {"id"}:
            stored = self.addresses.get(str(raw["id"]))
            if stored is None:
                return _error(404, "NOT_FOUND", f"{field} {raw['id']} could not be found.")
            return stored
        if not isinstance(raw, dict):
            return _required(field)
        for name in ("street1", "city", "zip", "country"):
            if not str(raw.get(name) or "").strip():
                return _required(f"{field}.{name}")
        country = str(raw["country"]).upper()
        if country == "US" and not str(raw.get("state") or "").strip():
            return _required(f"{field}.state")
        address = {
            "id": _id("adr"),
            "object": "Address",
            "mode": "test",
            "created_at": _now(),
            "updated_at": _now(),
            **{name: raw.get(name) for name in _ADDRESS_FIELDS},
            "country": country,
            "residential": None,
            "verifications": {},
        }
        self.addresses[address["id"]] = address
        return address

    def _create_address(self, raw: Any) -> FakeResponse:
        address = self._address(raw, "address")
        return address if isinstance(address, FakeResponse) else FakeResponse(201, _copy(address))

    def _parcel(self, raw: Any, field: str) -> dict[str, Any] | FakeResponse:
        if isinstance(raw, dict) and raw.get("id") and set(raw) == {"id"}:
            stored = self.parcels.get(str(raw["id"]))
            if stored is None:
                return _error(404, "NOT_FOUND", f"{field} {raw['id']} could not be found.")
            return stored
        if not isinstance(raw, dict):
            return _required(field)
        try:
            weight = Decimal(str(raw.get("weight")))
        except InvalidOperation:
            return _required(f"{field}.weight")
        if not weight.is_finite() or weight <= 0:
            return _error(
                422,
                "PARCEL.PARAMETERS.INVALID",
                "Parcel weight must be greater than 0.",
                [{"field": f"{field}.weight", "message": "must be greater than 0"}],
            )
        parcel = {
            "id": _id("prcl"),
            "object": "Parcel",
            "mode": "test",
            "length": raw.get("length"),
            "width": raw.get("width"),
            "height": raw.get("height"),
            "predefined_package": raw.get("predefined_package"),
            "weight": float(weight),
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.parcels[parcel["id"]] = parcel
        return parcel

    # -- shipments

    def _create_shipment(self, raw: Any) -> FakeResponse:
        if not isinstance(raw, dict):
            return _required("shipment")
        to_address = self._address(raw.get("to_address"), "shipment.to_address")
        if isinstance(to_address, FakeResponse):
            return to_address
        if "UNDELIVERABLE" in str(to_address.get("street1") or "").upper():
            return _error(
                422,
                "ADDRESS.VERIFY.FAILURE",
                "Unable to verify address.",
                [{"field": "shipment.to_address.street1", "message": "Address not found"}],
            )
        from_address = self._address(raw.get("from_address"), "shipment.from_address")
        if isinstance(from_address, FakeResponse):
            return from_address
        parcel = self._parcel(raw.get("parcel"), "shipment.parcel")
        if isinstance(parcel, FakeResponse):
            return parcel
        shipment_id = _id("shp")
        now = _now()
        shipment = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": raw.get("reference"),
            "status": "unknown",
            "to_address": to_address,
            "from_address": from_address,
            "return_address": from_address,
            "buyer_address": to_address,
            "parcel": parcel,
            "options": raw.get("options") or {},
            "rates": self._rates(shipment_id, to_address, from_address, parcel),
            "messages": [],
            "selected_rate": None,
            "postage_label": None,
            "tracking_code": None,
            "tracker": None,
            "fees": [],
            "refund_status": None,
            "created_at": now,
            "updated_at": now,
        }
        self.shipments[shipment_id] = shipment
        return FakeResponse(201, _copy(shipment))

    def _rates(
        self,
        shipment_id: str,
        to_address: dict[str, Any],
        from_address: dict[str, Any],
        parcel: dict[str, Any],
    ) -> list[dict[str, Any]]:
        pounds = max(1, -(-int(Decimal(str(parcel["weight"])) * 100) // 1600))
        zone = 1 + abs(_zip_digit(to_address) - _zip_digit(from_address))
        rates = []
        for carrier, service, base, per_lb, per_zone, days in _SERVICES:
            amount = Decimal(base) + Decimal(per_lb) * (pounds - 1) + Decimal(per_zone) * zone
            rate = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            rates.append(
                {
                    "id": _id("rate"),
                    "object": "Rate",
                    "mode": "test",
                    "service": service,
                    "carrier": carrier,
                    "rate": str(rate),
                    "currency": "USD",
                    "retail_rate": str(rate + Decimal("1.25")),
                    "retail_currency": "USD",
                    "list_rate": str(rate + Decimal("0.50")),
                    "list_currency": "USD",
                    "delivery_days": days,
                    "delivery_date_guaranteed": False,
                    "est_delivery_days": days,
                    "shipment_id": shipment_id,
                    "carrier_account_id": f"ca_{hashlib.md5(carrier.encode()).hexdigest()}",  # noqa: S324
                    "created_at": _now(),
                    "updated_at": _now(),
                }
            )
        return rates

    def _list_shipments(self, query: dict[str, str]) -> FakeResponse:
        newest_first = sorted(
            self.shipments.values(), key=lambda s: (s["created_at"], s["id"]), reverse=True
        )
        before = query.get("before_id")
        if before:
            ids = [s["id"] for s in newest_first]
            newest_first = newest_first[ids.index(before) + 1 :] if before in ids else []
        start = query.get("start_datetime")
        if start:
            newest_first = [s for s in newest_first if s["created_at"] >= start[:19]]
        if "reference" in query:
            newest_first = [s for s in newest_first if s.get("reference") == query["reference"]]
        if query.get("purchased") in ("true", "false"):
            bought = query["purchased"] == "true"
            newest_first = [s for s in newest_first if bool(s["selected_rate"]) == bought]
        size = max(1, min(100, int(query.get("page_size") or 20)))
        page = newest_first[:size]
        return FakeResponse(
            200, {"shipments": _copy(page), "has_more": len(newest_first) > len(page)}
        )

    def _buy(self, shipment_id: str, body: dict[str, Any]) -> FakeResponse:
        shipment = self.shipments.get(shipment_id)
        if shipment is None:
            return _error(404, "NOT_FOUND", "The requested resource could not be found.")
        if shipment["selected_rate"] is not None:
            return _error(
                422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment."
            )
        raw_rate = body.get("rate")
        rate_id = raw_rate.get("id") if isinstance(raw_rate, dict) else raw_rate
        if not rate_id:
            return _required("rate.id")
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            return _error(
                422,
                "SHIPMENT.INVALID_PARAMS",
                "The rate does not belong to this shipment.",
                [{"field": "rate.id", "message": "is not a rate of this shipment"}],
            )
        now = _now()
        tracking_code = _tracking_code(rate["carrier"])
        label_id = _id("pl")
        tracker = self._new_tracker(tracking_code, rate["carrier"], shipment_id)
        shipment.update(
            {
                "selected_rate": rate,
                "tracking_code": tracking_code,
                "postage_label": {
                    "id": label_id,
                    "object": "PostageLabel",
                    "label_date": now,
                    "label_resolution": 300,
                    "label_size": "4x6",
                    "label_type": "default",
                    "label_file_type": "image/png",
                    "label_url": f"{self.url}/files/postage_label/{label_id}.png",
                    "label_pdf_url": None,
                    "label_zpl_url": None,
                    "created_at": now,
                    "updated_at": now,
                },
                "tracker": tracker,
                "fees": [
                    {"object": "Fee", "type": "LabelFee", "amount": "0.00000", "charged": True},
                    {
                        "object": "Fee",
                        "type": "PostageFee",
                        "amount": rate["rate"],
                        "charged": True,
                    },
                ],
                "updated_at": now,
            }
        )
        self.purchases.append(
            {"shipment_id": shipment_id, "rate_id": rate_id, "reference": shipment["reference"]}
        )
        return FakeResponse(200, _copy(shipment))

    # -- trackers

    def _new_tracker(
        self,
        tracking_code: str,
        carrier: str,
        shipment_id: str | None,
        status: str = "pre_transit",
    ) -> dict[str, Any]:
        now = _now()
        tracker = {
            "id": _id("trk"),
            "object": "Tracker",
            "mode": "test",
            "tracking_code": tracking_code,
            "status": status,
            "status_detail": "status_update",
            "signed_by": None,
            "weight": None,
            "est_delivery_date": None,
            "shipment_id": shipment_id,
            "carrier": carrier,
            "tracking_details": [
                {
                    "object": "TrackingDetail",
                    "message": "Shipping Label Created",
                    "status": status,
                    "status_detail": "status_update",
                    "datetime": now,
                    "source": carrier,
                    "tracking_location": {
                        "object": "TrackingLocation",
                        "city": None,
                        "state": None,
                        "country": None,
                        "zip": None,
                    },
                }
            ],
            "carrier_detail": None,
            "public_url": f"{self.url}/track/{tracking_code}",
            "fees": [],
            "created_at": now,
            "updated_at": now,
        }
        self.trackers[tracker["id"]] = tracker
        return tracker

    def _create_tracker(self, raw: Any) -> FakeResponse:
        if not isinstance(raw, dict) or not str(raw.get("tracking_code") or "").strip():
            return _required("tracker.tracking_code")
        code = str(raw["tracking_code"]).strip()
        for tracker in self.trackers.values():
            if tracker["tracking_code"] == code:
                return FakeResponse(200, _copy(tracker))
        status = _TEST_TRACKING_CODES.get(code, "pre_transit")
        tracker = self._new_tracker(code, str(raw.get("carrier") or "USPS"), None, status)
        return FakeResponse(201, _copy(tracker))

    def advance(
        self,
        tracker_id: str,
        status: str,
        *,
        status_detail: str | None = None,
        message: str | None = None,
        updated_at: str | None = None,
        city: str | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Move a tracker on; the `tracker.updated` Event (stored, not yet delivered)."""
        with self.lock:
            tracker = self.trackers[tracker_id]
            previous = tracker["status"]
            at = updated_at or _now()
            tracker["status"] = status
            tracker["status_detail"] = status_detail or "status_update"
            tracker["updated_at"] = at
            tracker["tracking_details"].append(
                {
                    "object": "TrackingDetail",
                    "message": message or status.replace("_", " ").capitalize(),
                    "status": status,
                    "status_detail": tracker["status_detail"],
                    "datetime": at,
                    "source": tracker["carrier"],
                    "tracking_location": {
                        "object": "TrackingLocation",
                        "city": city,
                        "state": state,
                        "country": "US" if city else None,
                        "zip": None,
                    },
                }
            )
            event = {
                "object": "Event",
                "id": _id("evt"),
                "mode": "test",
                "description": "tracker.updated",
                "previous_attributes": {"status": previous},
                "result": _copy(tracker),
                "status": "pending",
                "pending_urls": [self.webhook_url] if self.webhook_url else [],
                "completed_urls": [],
                "user_id": "user_storewirefake",
                "created_at": _now(),
                "updated_at": _now(),
            }
            self.events[event["id"]] = event
            return _copy(event)

    def deliver(
        self, event_id: str, *, url: str | None = None, secret: str | None = None, times: int = 1
    ) -> list[int | None]:
        """POST a stored Event, signed, `times` times; the HTTP statuses (None: no answer)."""
        with self.lock:
            event = _copy(self.events[event_id])
            target = url or self.webhook_url
            key = secret or self.webhook_secret
        if target is None:
            raise ValueError("no webhook url configured")
        body = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "EasyPost WebHook Agent 1.0",
            "X-Hmac-Signature": sign_body(body, key),
        }
        statuses: list[int | None] = []
        for _ in range(max(1, times)):
            try:
                status: int | None = httpx.post(
                    target, content=body, headers=headers, timeout=30
                ).status_code
            except httpx.HTTPError:
                status = None
            statuses.append(status)
            with self.lock:
                self.deliveries.append(
                    {"event_id": event_id, "url": target, "status": status, "at": time.time()}
                )
        return statuses

    # -- control plane

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        if parts == ["webhooks"] and request.method == "POST":
            spec = request.json()
            with self.lock:
                self.webhook_url = spec.get("url") or None
                self.webhook_secret = spec.get("secret") or self.default_webhook_secret
            return FakeResponse(200, {"url": self.webhook_url})
        if len(parts) == 2 and parts[0] == "trackers" and request.method == "POST":
            spec = request.json()
            if parts[1] not in self.trackers:
                return FakeResponse(404, {"error": f"no tracker {parts[1]}"})
            event = self.advance(
                parts[1],
                str(spec["status"]),
                status_detail=spec.get("status_detail"),
                message=spec.get("message"),
                updated_at=spec.get("updated_at"),
                city=spec.get("city"),
                state=spec.get("state"),
            )
            statuses: list[int | None] = []
            if spec.get("deliver", True) and (spec.get("url") or self.webhook_url):
                statuses = self.deliver(
                    event["id"],
                    url=spec.get("url"),
                    secret=spec.get("secret"),
                    times=int(spec.get("times", 1)),
                )
            return FakeResponse(200, {"event": event, "deliveries": statuses})
        if len(parts) == 3 and parts[0] == "events" and parts[2] == "deliver":
            if parts[1] not in self.events:
                return FakeResponse(404, {"error": f"no event {parts[1]}"})
            spec = request.json()
            statuses = self.deliver(
                parts[1],
                url=spec.get("url"),
                secret=spec.get("secret"),
                times=int(spec.get("times", 1)),
            )
            return FakeResponse(200, {"deliveries": statuses})
        return None

    def state(self) -> dict[str, Any]:
        return {
            "addresses": _copy(self.addresses),
            "shipments": _copy(self.shipments),
            "trackers": _copy(self.trackers),
            "purchases": _copy(self.purchases),
            "events": _copy(self.events),
            "deliveries": _copy(self.deliveries),
            "webhook_url": self.webhook_url,
        }

    def reset_state(self) -> None:
        self.addresses.clear()
        self.parcels.clear()
        self.shipments.clear()
        self.trackers.clear()
        self.purchases.clear()
        self.events.clear()
        self.deliveries.clear()
        self.webhook_url = None
        self.webhook_secret = self.default_webhook_secret


def _zip_digit(address: dict[str, Any]) -> int:
    digits = [c for c in str(address.get("zip") or "") if c.isdigit()]
    return int(digits[0]) if digits else 5


def _tracking_code(carrier: str) -> str:
    digits = str(uuid.uuid4().int)[:18].rjust(18, "0")
    if carrier == "UPS":
        return f"1Z{uuid.uuid4().hex[:16].upper()}"
    if carrier == "FedEx":
        return digits[:12]
    return f"9400{digits}"
