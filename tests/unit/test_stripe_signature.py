"""Stripe-Signature: vectors, several v1 values, secret rotation, tolerance, tampering."""

from __future__ import annotations

import pytest
from storewire.errors import SignatureInvalid, StaleWebhook
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.stripe import (
    SIGNATURE_HEADER,
    StripeSource,
    parse_signature_header,
    sign,
    signature_header,
    verify_signature,
)

BODY = b'{"id":"evt_test","object":"event"}'
T = 1700000000
DEV = "whsec_storewire_dev_secret"
OLD = "whsec_old_secret"
# printf '1700000000.<body>' | openssl dgst -sha256 -hmac <secret> -hex
DEV_VECTOR = "d66866ccd91ffadbd2a11bb378a682f230a31bd9dadf67dd9d2a2d3787f6b3a3"
OLD_VECTOR = "a1dd24cd166a5ec1b320e88ebfc7df18408a2dc13ab12ccf1d9e392d099b1dc1"


def headers(value: str) -> Headers:
    return Headers({SIGNATURE_HEADER: value})


@pytest.mark.parametrize(("secret", "expected"), [(DEV, DEV_VECTOR), (OLD, OLD_VECTOR)])
def test_given_known_vectors_when_signed_then_the_hex_hmac_of_t_dot_body_matches(
    secret: str, expected: str
) -> None:
    assert sign(BODY, secret, T) == expected


def test_given_a_fresh_signature_when_verified_then_its_timestamp_is_returned() -> None:
    value = f"t={T},v1={DEV_VECTOR}"

    assert verify_signature(headers(value), BODY, WebhookSecrets(DEV), now=T + 10) == T


def test_given_several_v1_values_when_any_one_matches_then_it_verifies() -> None:
    value = f"t={T},v1={'0' * 64},v1={DEV_VECTOR},v0=legacy"

    verify_signature(headers(value), BODY, WebhookSecrets(DEV), now=T)


def test_given_a_rotation_when_signed_with_the_previous_secret_then_it_still_verifies() -> None:
    secrets = WebhookSecrets(current="whsec_brand_new", previous=OLD)

    verify_signature(headers(f"t={T},v1={OLD_VECTOR}"), BODY, secrets, now=T)


def test_given_a_header_signed_with_both_secrets_when_verified_then_it_passes() -> None:
    value = signature_header(BODY, [DEV, OLD], timestamp=T)

    assert value == f"t={T},v1={DEV_VECTOR},v1={OLD_VECTOR}"
    verify_signature(headers(value), BODY, WebhookSecrets(OLD), now=T)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_given_a_valid_signature_outside_the_tolerance_when_verified_then_stale(age: int) -> None:
    with pytest.raises(StaleWebhook, match="tolerance is 300 s"):
        verify_signature(headers(f"t={T},v1={DEV_VECTOR}"), BODY, WebhookSecrets(DEV), now=T + age)


@pytest.mark.parametrize("age", [0, 299, 300, -300])
def test_given_a_timestamp_within_the_tolerance_when_verified_then_it_passes(age: int) -> None:
    verify_signature(headers(f"t={T},v1={DEV_VECTOR}"), BODY, WebhookSecrets(DEV), now=T + age)


def test_given_a_tampered_body_when_verified_then_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_signature(
            headers(f"t={T},v1={DEV_VECTOR}"),
            BODY.replace(b"evt_test", b"evt_evil"),
            WebhookSecrets(DEV),
            now=T,
        )


def test_given_a_tampered_timestamp_when_verified_then_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(headers(f"t={T + 1},v1={DEV_VECTOR}"), BODY, WebhookSecrets(DEV), now=T)


def test_given_a_stale_and_wrong_signature_when_verified_then_invalid_not_stale() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(headers(f"t={T},v1={'f' * 64}"), BODY, WebhookSecrets(DEV), now=T + 9999)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "missing"),
        (f"v1={DEV_VECTOR}", "no timestamp"),
        (f"t=soon,v1={DEV_VECTOR}", "malformed timestamp"),
        (f"t={T}", "no v1"),
        (f"t={T},v0={DEV_VECTOR}", "no v1"),
    ],
)
def test_given_a_malformed_header_when_verified_then_signature_invalid(
    value: str, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        verify_signature(Headers({SIGNATURE_HEADER: value}), BODY, WebhookSecrets(DEV), now=T)


def test_given_a_header_when_parsed_then_timestamp_and_every_v1_in_order() -> None:
    assert parse_signature_header(f" t={T} , v1=AB , v1=cd ") == (T, ("ab", "cd"))


def test_given_the_adapter_with_a_clock_when_verifying_then_the_tolerance_uses_it() -> None:
    fresh = StripeSource(clock=lambda: float(T + 5))
    late = StripeSource(clock=lambda: float(T + 400))
    value = headers(f"t={T},v1={DEV_VECTOR}")

    fresh.verify(value, BODY, WebhookSecrets(DEV))
    with pytest.raises(StaleWebhook):
        late.verify(value, BODY, WebhookSecrets(DEV))


def test_given_a_signature_header_when_described_then_sent_at_is_its_timestamp() -> None:
    delivery = StripeSource().describe(headers(f"t={T},v1={DEV_VECTOR}"))

    assert delivery.sent_at is not None
    assert int(delivery.sent_at.timestamp()) == T
    assert StripeSource().describe(Headers({})).sent_at is None
