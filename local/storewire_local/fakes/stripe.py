"""A local Stripe: PaymentIntents and refunds over Stripe's real request/response shapes.

API (form-encoded bodies with bracket notation, Bearer or Basic secret-key auth):

* ``POST /v1/payment_intents`` ``amount``, ``currency``, ``metadata[order_id]``,
  ``payment_method``, ``confirm=true``, ``capture_method``. Test payment methods:
  ``pm_card_visa`` (and ``pm_card_mastercard``) succeed; ``pm_card_chargeDeclined`` answers
  402 ``card_error``/``card_declined`` and leaves the intent in ``requires_payment_method``
  with ``last_payment_error``. Unconfirmed intents wait in ``requires_confirmation`` /
  ``requires_payment_method``; ``capture_method=manual`` stops at ``requires_capture``.
* ``GET /v1/payment_intents/{id}``; ``POST /v1/payment_intents/{id}/cancel``.
* ``POST /v1/refunds`` ``payment_intent`` [``amount``]: refunds the latest charge.
* ``Idempotency-Key``: the same key with the same parameters replays the first answer
  (``Idempotent-Replayed: true``); with other parameters it is 400 ``idempotency_error``.
* Errors: ``{"error": {"type", "code", "message", "param", ...}}``, with ``Request-Id``.

The key is ``STRIPE_API_KEY`` (development default ``sk_test_storewire_dev``).

Control plane (besides the faults of `FakeServer`): ``POST /_fake/payment_intents/{id}``
patches an intent (e.g. ``{"status": "processing"}``); ``POST /_fake/webhooks``
``{"url", "secret"}`` makes the fake deliver signed ``payment_intent.succeeded`` /
``payment_intent.payment_failed`` / ``charge.refunded`` events to ``url`` as they happen;
``POST /_fake/webhooks/send`` ``{"type", "id"}`` delivers one on demand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import httpx

from .base import FakeRequest, FakeResponse, FakeServer

DEFAULT_API_KEY = "sk_test_storewire_dev"
DEFAULT_WEBHOOK_SECRET = "whsec_storewire_dev_secret"  # noqa: S105 - the public dev default
SUCCEEDING_METHODS = frozenset({"pm_card_visa", "pm_card_mastercard", "pm_card_amex"})
DECLINED_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"})


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding: ``metadata[order_id]=x`` is ``{"metadata": {"order_id": "x"}}``."""
    result: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        head, _, rest = key.partition("[")
        path = [head, *(p for p in rest.rstrip("]").split("][") if p)] if rest else [head]
        target = result
        for part in path[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                break
            target = nested
        else:
            target[path[-1]] = value
    return result


def sign_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``body``: ``t=...,v1=<hex hmac>``."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def build_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Stripe ``event`` object wrapping ``obj`` (as Stripe delivers it to webhooks)."""
    return {
        "id": event_id or _id("evt"),
        "object": "event",
        "api_version": "2025-07-30.basil",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": _id("req"), "idempotency_key": None},
        "type": event_type,
    }


def payment_intent_object(
    *,
    amount: int,
    currency: str,
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    intent_id: str | None = None,
    payment_method: str | None = "pm_card_visa",
) -> dict[str, Any]:
    """A PaymentIntent object as Stripe returns it."""
    pid = intent_id or _id("pi")
    succeeded = status == "succeeded"
    return {
        "id": pid,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "amount_received": amount if succeeded else 0,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:16]}",
        "confirmation_method": "automatic",
        "created": int(time.time()),
        "currency": currency.lower(),
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": _id("ch") if succeeded else None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "status": status,
    }


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> FakeResponse:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    request_id = _id("req")
    error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
    error.update(extra)
    return FakeResponse(status, {"error": error}, {"Request-Id": request_id})


class StripeFake(FakeServer):
    name = "stripe"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, FakeResponse]] = {}
        self.webhook_url: str | None = None
        self.webhook_secret = DEFAULT_WEBHOOK_SECRET
        self.webhooks_sent: list[dict[str, Any]] = []

    # -- vendor-shaped faults

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        return _error(status, "An unknown error occurred", kind="api_error")

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        return _error(
            429,
            "Too many requests hit the API too quickly.",
            kind="invalid_request_error",
            code="rate_limit",
        )

    # -- the API

    def _authorised(self, request: FakeRequest) -> FakeResponse | None:
        value = request.header("authorization")
        key = ""
        if value.startswith("Bearer "):
            key = value[len("Bearer ") :].strip()
        elif value.startswith("Basic "):
            try:
                key = base64.b64decode(value[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return _error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not hmac.compare_digest(key, self.api_key):
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            return _error(401, f"Invalid API Key provided: {masked}", code="api_key_invalid")
        return None

    def handle(self, request: FakeRequest) -> FakeResponse:
        denied = self._authorised(request)
        if denied is not None:
            return denied
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] != ["v1"]:
            return _error(404, f"Unrecognized request URL ({request.method}: {request.path}).")
        key = request.header("idempotency-key")
        if request.method == "POST" and key:
            fingerprint = f"{request.path}?{sorted(decode_form(request.body).items())!r}"
            with self.lock:
                seen = self.idempotency.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return _error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        kind="idempotency_error",
                    )
                replay = seen[1]
                return FakeResponse(
                    replay.status, replay.body, {**replay.headers, "Idempotent-Replayed": "true"}
                )
            response = self._route(request, parts)
            if response.status < 500:
                with self.lock:
                    self.idempotency[key] = (fingerprint, response)
            return response
        return self._route(request, parts)

    def _route(self, request: FakeRequest, parts: list[str]) -> FakeResponse:
        with self.lock:
            if parts == ["v1", "payment_intents"] and request.method == "POST":
                return self._create_intent(decode_form(request.body))
            if len(parts) == 3 and parts[1] == "payment_intents" and request.method == "GET":
                return self._get_intent(parts[2])
            if (
                len(parts) == 4
                and parts[1] == "payment_intents"
                and parts[3] == "cancel"
                and request.method == "POST"
            ):
                return self._cancel_intent(parts[2])
            if parts == ["v1", "refunds"] and request.method == "POST":
                return self._refund(decode_form(request.body))
        return _error(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    def _ok(self, body: dict[str, Any]) -> FakeResponse:
        return FakeResponse(200, json.loads(json.dumps(body)), {"Request-Id": _id("req")})

    def _create_intent(self, params: dict[str, Any]) -> FakeResponse:
        raw_amount = params.get("amount")
        if raw_amount in (None, ""):
            return _error(
                400, "Missing required param: amount.", code="parameter_missing", param="amount"
            )
        try:
            amount = int(str(raw_amount))
        except ValueError:
            return _error(
                400,
                "Invalid integer: " + str(raw_amount),
                code="parameter_invalid_integer",
                param="amount",
            )
        if amount < 1:
            return _error(
                400, "Amount must be at least 1.", code="amount_too_small", param="amount"
            )
        currency = str(params.get("currency") or "")
        if len(currency) != 3 or not currency.isalpha():
            return _error(
                400, "Missing required param: currency.", code="parameter_missing", param="currency"
            )
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
        method = params.get("payment_method") or None
        if method is not None and method not in SUCCEEDING_METHODS | DECLINED_METHODS:
            return _error(
                400,
                f"No such PaymentMethod: '{method}'",
                code="resource_missing",
                param="payment_method",
            )
        confirm = str(params.get("confirm", "false")).lower() == "true"
        manual = params.get("capture_method") == "manual"
        if not confirm:
            status = "requires_confirmation" if method else "requires_payment_method"
        elif method is None:
            return _error(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        elif method in DECLINED_METHODS:
            status = "requires_payment_method"
        else:
            status = "requires_capture" if manual else "succeeded"
        intent = payment_intent_object(
            amount=amount,
            currency=currency,
            status=status,
            metadata={str(k): str(v) for k, v in metadata.items()},
            payment_method=None if status == "requires_payment_method" else method,
        )
        if manual:
            intent["capture_method"] = "manual"
        if params.get("description"):
            intent["description"] = str(params["description"])
        if method in DECLINED_METHODS:
            charge_id = _id("ch")
            intent["latest_charge"] = charge_id
            intent["last_payment_error"] = {
                "charge": charge_id,
                "code": "card_declined",
                "decline_code": "generic_decline",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card was declined.",
                "type": "card_error",
            }
        self.intents[intent["id"]] = intent
        if status == "succeeded":
            self._charge_for(intent)
            self._emit("payment_intent.succeeded", intent)
        if method in DECLINED_METHODS:
            self._emit("payment_intent.payment_failed", intent)
            return _error(
                402,
                "Your card was declined.",
                kind="card_error",
                code="card_declined",
                decline_code="generic_decline",
                charge=intent["latest_charge"],
                payment_intent=json.loads(json.dumps(intent)),
            )
        return self._ok(intent)

    def _charge_for(self, intent: dict[str, Any]) -> dict[str, Any]:
        charge = {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "created": int(time.time()),
            "metadata": dict(intent["metadata"]),
            "paid": True,
            "payment_intent": intent["id"],
            "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False},
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        return charge

    def _get_intent(self, intent_id: str) -> FakeResponse:
        intent = self.intents.get(intent_id)
        if intent is None:
            return _error(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        return self._ok(intent)

    def _cancel_intent(self, intent_id: str) -> FakeResponse:
        intent = self.intents.get(intent_id)
        if intent is None:
            return _error(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        if intent["status"] == "succeeded":
            return _error(
                400,
                "You cannot cancel this PaymentIntent because it has a status of succeeded.",
                code="payment_intent_unexpected_state",
            )
        intent["status"] = "canceled"
        intent["canceled_at"] = int(time.time())
        intent["cancellation_reason"] = "requested_by_customer"
        return self._ok(intent)

    def _refund(self, params: dict[str, Any]) -> FakeResponse:
        intent = self.intents.get(str(params.get("payment_intent") or ""))
        if intent is None or intent.get("latest_charge") not in self.charges:
            return _error(
                400,
                "This PaymentIntent does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        charge = self.charges[intent["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(str(params.get("amount") or left))
        if amount < 1 or amount > left:
            return _error(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": {},
            "payment_intent": intent["id"],
            "status": "succeeded",
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, refund)
        self._emit("charge.refunded", charge)
        return self._ok(refund)

    # -- webhooks

    def _emit(self, event_type: str, obj: dict[str, Any]) -> None:
        if self.webhook_url is None:
            return
        event = build_event(event_type, json.loads(json.dumps(obj)))
        threading.Thread(
            target=self._deliver, args=(self.webhook_url, self.webhook_secret, event), daemon=True
        ).start()

    def _deliver(self, url: str, secret: str, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, secret),
        }
        try:
            answer = httpx.post(url, content=body, headers=headers, timeout=30)
            status: int | None = answer.status_code
        except httpx.HTTPError:
            status = None
        with self.lock:
            self.webhooks_sent.append({"id": event["id"], "type": event["type"], "status": status})

    # -- control plane

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        if parts == ["webhooks"] and request.method == "POST":
            spec = request.json()
            with self.lock:
                self.webhook_url = spec.get("url") or None
                self.webhook_secret = spec.get("secret") or DEFAULT_WEBHOOK_SECRET
            return FakeResponse(200, {"url": self.webhook_url})
        if parts == ["webhooks", "send"] and request.method == "POST":
            spec = request.json()
            with self.lock:
                obj = self.intents.get(spec["id"]) or self.charges.get(spec["id"])
                url = spec.get("url") or self.webhook_url
                secret = spec.get("secret") or self.webhook_secret
            if obj is None or url is None:
                return FakeResponse(404, {"error": "unknown object or no webhook url"})
            event = build_event(str(spec["type"]), json.loads(json.dumps(obj)))
            self._deliver(url, secret, event)
            return FakeResponse(200, {"event": event})
        if len(parts) == 2 and parts[0] == "payment_intents" and request.method == "POST":
            with self.lock:
                intent = self.intents.get(parts[1])
                if intent is None:
                    return FakeResponse(404, {"error": "no such intent"})
                intent.update(request.json())
                return FakeResponse(200, intent)
        return None

    def state(self) -> dict[str, Any]:
        return {
            "payment_intents": json.loads(json.dumps(self.intents)),
            "charges": json.loads(json.dumps(self.charges)),
            "idempotency_keys": sorted(self.idempotency),
            "webhook_url": self.webhook_url,
            "webhooks_sent": list(self.webhooks_sent),
        }

    def reset_state(self) -> None:
        self.intents.clear()
        self.charges.clear()
        self.idempotency.clear()
        self.webhooks_sent.clear()
        self.webhook_url = None
