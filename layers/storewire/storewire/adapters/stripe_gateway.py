"""`PaymentGateway` on the Stripe API (or the local Stripe fake: only `base_url` differs).

Reads a PaymentIntent (`GET /v1/payment_intents/{id}`, Bearer secret key) and turns it into
a `GatewayPayment`; creates PaymentIntents (form-encoded, `metadata[order_id]`, always with
an `Idempotency-Key` derived by the caller from the event, so a retry can never charge twice).
Stripe's error object `{"error": {"type", "code", "message"}}` gives the typed error its
code; the shared `HttpClient` decides retryable vs permanent by status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from storewire.domain.money import Money
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import GatewayPayment, stripe_payment
from storewire.errors import PermanentError
from storewire.http import Credential, HttpClient, credential, with_fresh_credential

DEFAULT_BASE_URL = "https://api.stripe.com"


def describe_stripe_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from Stripe's error object; tolerant of non-JSON bodies."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, f"HTTP {response.status_code}"
    code = error.get("code") or error.get("type")
    return (str(code) if code else None), str(error.get("message") or "")[:300]


def form_encode(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Stripe's bracket notation: ``{"metadata": {"order_id": "x"}}`` -> ``metadata[order_id]``."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            flat.update(form_encode(value, name))
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        else:
            flat[name] = str(value)
    return flat


class StripeGateway:
    """Stripe PaymentIntents through the shared HTTP client."""

    name = "stripe"

    def __init__(
        self,
        http: HttpClient,
        api_key: str | Credential,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str | None = None,
    ) -> None:
        self._http = http
        self._api_key = credential(api_key)
        self._base = base_url.rstrip("/")
        self._version = api_version

    def _headers(self, key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if self._version:
            headers["Stripe-Version"] = self._version
        return headers

    def retrieve_payment_intent(self, intent_id: str) -> dict[str, Any]:
        """The PaymentIntent object (`PermanentUpstreamError` 404 when Stripe has none)."""
        if not intent_id.startswith("pi_") or "/" in intent_id:
            raise PermanentError(f"not a PaymentIntent id: {intent_id!r}")
        response = with_fresh_credential(
            lambda key: self._http.request(
                "GET", f"{self._base}/v1/payment_intents/{intent_id}", headers=self._headers(key)
            ),
            self._api_key,
        )
        body: dict[str, Any] = response.json()
        return body

    def fetch_payment(self, order: OrderRecord, reference: str | None) -> GatewayPayment:
        """What Stripe says about the PaymentIntent `reference` now."""
        if not reference:
            raise PermanentError(f"no Stripe PaymentIntent id for order {order.order_id}")
        intent = self.retrieve_payment_intent(reference)
        error = intent.get("last_payment_error")
        failure = None
        if isinstance(error, dict):
            failure = str(error.get("decline_code") or error.get("code") or "payment_error")
        return stripe_payment(
            str(intent["id"]),
            str(intent["status"]),
            int(intent["amount"]),
            str(intent["currency"]),
            amount_received=(
                int(intent["amount_received"]) if intent.get("amount_received") else None
            ),
            last_payment_error=failure,
        )

    def create_payment_intent(
        self,
        amount: Money,
        *,
        order_id: str,
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create (and optionally confirm) a PaymentIntent for `amount`, once per key."""
        params = form_encode(
            {
                "amount": amount.to_minor_units(),
                "currency": amount.currency.lower(),
                "metadata": {**(metadata or {}), "order_id": order_id},
                "payment_method": payment_method,
                "confirm": confirm if confirm else None,
            }
        )
        response = with_fresh_credential(
            lambda key: self._http.request(
                "POST",
                f"{self._base}/v1/payment_intents",
                headers=self._headers(key),
                data=params,
                idempotency_key=idempotency_key,
            ),
            self._api_key,
        )
        body: dict[str, Any] = response.json()
        return body
