"""Bad input the webhook fuzzing pass (tests/reliability/test_webhook_fuzz.py) found answered
5xx: each is a body that can never succeed, so it must be a 400 that stores nothing.

Before the fix, a validly signed body whose fields fit the payload model but not the
canonical event (a currency that is not ISO 4217, an amount finer than its minor unit, a
negative quantity, mixed refund currencies), a JSON integer too long to parse, or JSON
nested too deep answered 500; a delivery id too long for the dedupe key answered 503. The
sender retries a 5xx, for days, and the answer would never change.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ingest_fakes import SAMPLE_NOW, SECRET_ID, Fakes
from samples import DEV_SECRET, EVENTS_DIR, sample_payload
from storewire.errors import MalformedPayload
from storewire.ingest import MAX_DELIVERY_ID_BYTES, ingest_webhook
from storewire.sources import easypost, shopify
from storewire.sources.stripe import StripeSource, signature_header

STRIPE_SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stripe-webhook"
EASYPOST_SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:easypost-webhook"
STRIPE_SECRET = "whsec_fuzz"
EASYPOST_SECRET = "whsec_fuzz_easypost"


def _fakes() -> Fakes:
    fakes = Fakes()
    for secret_id, secret in (
        (STRIPE_SECRET_ID, STRIPE_SECRET),
        (EASYPOST_SECRET_ID, EASYPOST_SECRET),
    ):
        fakes.secrets.stored[secret_id] = {"current": secret, "previous": ""}
        fakes.secrets.cached[secret_id] = {"current": secret, "previous": ""}
    return fakes


def _deps(fakes: Fakes) -> Any:
    stripe = StripeSource(clock=lambda: SAMPLE_NOW.timestamp())
    ids = {"shopify": SECRET_ID, "stripe": STRIPE_SECRET_ID, "easypost": EASYPOST_SECRET_ID}
    sources = {"stripe": stripe, "shopify": shopify.ADAPTER, "easypost": easypost.ADAPTER}
    return fakes.deps(secret_ids=ids, sources=sources.__getitem__)


def _signed(source: str, body: bytes, *, webhook_id: str = "fuzz-1") -> dict[str, str]:
    if source == "stripe":
        return {
            "stripe-signature": signature_header(body, STRIPE_SECRET, int(SAMPLE_NOW.timestamp()))
        }
    if source == "easypost":
        return {"x-hmac-signature": easypost.sign(body, EASYPOST_SECRET)}
    return shopify.signed_headers(
        "orders/create",
        body,
        shop="storewire-demo.myshopify.com",
        webhook_id=webhook_id,
        secret=DEV_SECRET,
        triggered_at=SAMPLE_NOW,
    )


def _assert_refused_and_nothing_stored(source: str, body: bytes, **kwargs: str) -> None:
    fakes = _fakes()

    with pytest.raises(MalformedPayload):
        ingest_webhook(source, _signed(source, body, **kwargs), body, _deps(fakes))

    assert fakes.dedupe is not None
    assert fakes.dedupe.records == {}, "a refused delivery left a dedupe claim"
    assert fakes.publisher.published == []
    assert fakes.claim_checks.objects == {}


def _order(**changes: Any) -> bytes:
    order = copy.deepcopy(sample_payload("orders/create"))
    for path, value in changes.items():
        target = order
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key) if key.isdigit() else key]
        target[last] = value
    return json.dumps(order).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_order(currency="usdx"), id="currency-not-iso-4217"),
        pytest.param(_order(subtotal_price="0.001"), id="amount-finer-than-minor-unit"),
        pytest.param(_order(total_price="1e999999"), id="amount-exponent-overflows"),
        pytest.param(_order(line_items__0__quantity=-1), id="negative-quantity"),
    ],
)
def test_given_a_signed_order_the_canonical_event_refuses_when_ingested_then_400(
    body: bytes,
) -> None:
    _assert_refused_and_nothing_stored("shopify", body)


def test_given_a_signed_refund_in_two_currencies_when_ingested_then_400() -> None:
    refund = sample_payload("refunds/create")
    assert refund["transactions"], "the sample refund needs a transaction"
    refund["transactions"] = [dict(refund["transactions"][0]), dict(refund["transactions"][0])]
    refund["transactions"][1]["id"] = refund["transactions"][0]["id"] + 1
    refund["transactions"][1]["currency"] = "EUR"
    body = json.dumps(refund).encode()
    fakes = _fakes()
    headers = shopify.signed_headers(
        "refunds/create",
        body,
        shop="storewire-demo.myshopify.com",
        webhook_id="fuzz-refund",
        secret=DEV_SECRET,
        triggered_at=SAMPLE_NOW,
    )

    with pytest.raises(MalformedPayload):
        ingest_webhook("shopify", headers, body, _deps(fakes))

    assert fakes.publisher.published == []


@pytest.mark.parametrize("source", ["shopify", "stripe", "easypost"])
def test_given_a_signed_json_integer_too_long_to_parse_when_ingested_then_400(
    source: str,
) -> None:
    _assert_refused_and_nothing_stored(source, b'{"id": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize("source", ["shopify", "stripe", "easypost"])
def test_given_signed_json_nested_too_deep_when_ingested_then_400(source: str) -> None:
    _assert_refused_and_nothing_stored(source, b"[" * 200_000 + b"]" * 200_000)


def test_given_a_shopify_webhook_id_too_long_for_the_dedupe_key_when_ingested_then_400() -> None:
    _assert_refused_and_nothing_stored(
        "shopify", _order(), webhook_id="w" * (MAX_DELIVERY_ID_BYTES + 1)
    )


@pytest.mark.parametrize(
    ("source", "sample"),
    [("stripe", "payment_intent_succeeded"), ("easypost", "tracker_updated")],
)
def test_given_an_event_id_too_long_for_the_dedupe_key_when_ingested_then_400(
    source: str, sample: str
) -> None:
    event = json.loads((EVENTS_DIR / "payloads" / source / f"{sample}.json").read_text())
    event["id"] = "evt_" + "x" * MAX_DELIVERY_ID_BYTES

    _assert_refused_and_nothing_stored(source, json.dumps(event).encode())


def test_given_a_webhook_id_at_the_limit_when_ingested_then_accepted() -> None:
    fakes = _fakes()
    body = _order()
    headers = _signed("shopify", body, webhook_id="w" * MAX_DELIVERY_ID_BYTES)

    result = ingest_webhook("shopify", headers, body, _deps(fakes))

    assert result.status == "accepted"
