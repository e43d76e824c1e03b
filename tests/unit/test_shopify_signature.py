from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from storewire.errors import SignatureInvalid
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.shopify import ADAPTER, sign, signed_headers, verify_signature

BODY = b'{"id":820982911946154508,"email":"jon@example.com"}'
# openssl dgst -sha256 -hmac <secret> -binary | base64
DEV_VECTOR = "Qb+d9UZcHSuL1pFIGqbMcr0A5uMJBIqpGcXOpvc+WWA="
HUSH_VECTOR = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
EMPTY_BODY_VECTOR = "I6zclsqXneeaMJ5VsEsDQjkT46j4TGQt4U0YaKugBDc="
DEV = "shpss_storewire_dev_secret"


@pytest.mark.parametrize(
    ("body", "secret", "expected"),
    [(BODY, DEV, DEV_VECTOR), (BODY, "hush", HUSH_VECTOR), (b"", DEV, EMPTY_BODY_VECTOR)],
)
def test_given_known_vectors_when_signed_then_the_base64_hmac_matches(
    body: bytes, secret: str, expected: str
) -> None:
    assert sign(body, secret) == expected


def test_given_the_current_secret_when_verified_then_it_passes() -> None:
    verify_signature(
        Headers({"X-Shopify-Hmac-Sha256": DEV_VECTOR}), BODY, WebhookSecrets(current=DEV)
    )


def test_given_a_rotation_when_signed_with_the_previous_secret_then_it_still_passes() -> None:
    secrets = WebhookSecrets(current="shpss_new_secret", previous=DEV)

    verify_signature(Headers({"X-Shopify-Hmac-Sha256": DEV_VECTOR}), BODY, secrets)


def test_given_the_wrong_secret_when_verified_then_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_signature(
            Headers({"X-Shopify-Hmac-Sha256": HUSH_VECTOR}), BODY, WebhookSecrets(current=DEV)
        )


def test_given_a_tampered_body_when_verified_then_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(
            Headers({"X-Shopify-Hmac-Sha256": DEV_VECTOR}),
            BODY.replace(b"jon", b"eve"),
            WebhookSecrets(current=DEV),
        )


@pytest.mark.parametrize("headers", [{}, {"X-Shopify-Hmac-Sha256": ""}])
def test_given_no_signature_header_when_verified_then_signature_invalid(
    headers: dict[str, str],
) -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        verify_signature(Headers(headers), BODY, WebhookSecrets(current=DEV))


@pytest.mark.parametrize(
    "name", ["x-shopify-hmac-sha256", "X-SHOPIFY-HMAC-SHA256", "X-Shopify-Hmac-SHA256"]
)
def test_given_any_header_casing_when_verified_then_it_is_found(name: str) -> None:
    verify_signature(Headers({name: DEV_VECTOR}), BODY, WebhookSecrets(current=DEV))


def test_given_a_non_ascii_or_garbage_header_when_verified_then_signature_invalid() -> None:
    for value in ("ünïcødé", "not base64 at all", DEV_VECTOR[:-2]):
        with pytest.raises(SignatureInvalid):
            verify_signature(
                Headers({"X-Shopify-Hmac-Sha256": value}), BODY, WebhookSecrets(current=DEV)
            )


def test_given_an_empty_previous_secret_when_verified_then_only_current_is_tried() -> None:
    assert WebhookSecrets(current=DEV, previous="").candidates() == (DEV,)
    with pytest.raises(SignatureInvalid):
        verify_signature(
            Headers({"X-Shopify-Hmac-Sha256": sign(BODY, "")}), BODY, WebhookSecrets(current=DEV)
        )


def test_given_signed_headers_when_read_back_then_they_verify_and_describe_the_delivery() -> None:
    headers = Headers(
        signed_headers("orders/create", BODY, shop="s.myshopify.com", webhook_id="w-1", secret=DEV)
    )

    ADAPTER.verify(headers, BODY, WebhookSecrets(current=DEV))
    delivery = ADAPTER.describe(headers)
    assert (delivery.topic, delivery.shop, delivery.delivery_id) == (
        "orders/create",
        "s.myshopify.com",
        "w-1",
    )
    assert delivery.sent_at is not None
    assert headers["x-shopify-event-id"] == "w-1"
    assert headers["X-Shopify-API-Version"]


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64))
def test_given_any_body_when_signed_then_it_verifies_and_any_changed_byte_does_not(
    body: bytes, secret: str
) -> None:
    headers = Headers({"x-shopify-hmac-sha256": sign(body, secret)})

    verify_signature(headers, body, WebhookSecrets(current=secret))
    with pytest.raises(SignatureInvalid):
        verify_signature(headers, body + b"\x00", WebhookSecrets(current=secret))
