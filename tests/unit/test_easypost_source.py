"""The EasyPost webhook source: signature vectors, NFKD secrets, tracker normalisation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ingest_fakes import SECRET_ID, Fakes, StaticSecrets
from storewire.domain.events import event_id
from storewire.domain.shipments import ShipmentStatusChanged, TrackingStatus
from storewire.errors import MalformedPayload, SignatureInvalid
from storewire.ingest import ingest_webhook
from storewire.sources import Headers, SourceAdapter, WebhookSecrets
from storewire.sources.easypost import ADAPTER, SIGNATURE_HEADER, sign, verify_signature

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "easypost"
SECRET = "whsec_storewire_easypost_dev"


def body(name: str = "tracker_updated.json") -> bytes:
    return (PAYLOADS / name).read_bytes()


def signed(raw: bytes, secret: str = SECRET) -> Headers:
    return Headers({SIGNATURE_HEADER: sign(raw, secret), "Content-Type": "application/json"})


# --------------------------------------------------------------------------- signature vectors


def test_given_a_known_body_and_secret_when_signed_then_the_hex_hmac_with_its_prefix() -> None:
    # Computed independently: printf '%s' '{"id":"evt_1"}' | openssl dgst -sha256 -hmac s3cr3t
    assert sign(b'{"id":"evt_1"}', "s3cr3t") == (
        "hmac-sha256-hex=93b398b9ca62b21fe8c9a04b5fc3cb0b63f6bfa54334900bbc11785aef08f27d"
    )


def test_given_the_sample_payload_when_signed_then_it_matches_openssl() -> None:
    # cd events/payloads/easypost
    # openssl dgst -sha256 -hmac whsec_storewire_easypost_dev tracker_updated.json
    assert sign(body(), SECRET) == (
        "hmac-sha256-hex=6c867b31b320aa57e32a6d6125009580093fded4b8c7e7d6c12b71d527197250"
    )


def test_given_a_secret_with_compatibility_characters_when_signed_then_it_is_nfkd_normalised() -> (
    None
):
    # "ﬁ" (U+FB01) decomposes to "fi" under NFKD; "é" (U+00E9) to "e" + U+0301. Vector:
    # printf '%s' '{}' | openssl dgst -sha256 -hmac "$(printf 'file-cafe\xcc\x81')"
    assert sign(b"{}", "\ufb01le-caf\u00e9") == (
        "hmac-sha256-hex=5620fc41b784b20d1805acde38e7e862d700797b411fdd7e13cea3566eb95734"
    )
    assert sign(b"{}", "\ufb01le-caf\u00e9") == sign(b"{}", "file-cafe\u0301")
    assert sign(b"{}", "\ufb01le") != sign(b"{}", "\ufb01le ")


def test_given_a_correct_signature_when_verified_then_it_passes() -> None:
    verify_signature(signed(body()), body(), WebhookSecrets(current=SECRET))


def test_given_uppercase_hex_and_spaces_when_verified_then_it_passes() -> None:
    value = sign(body(), SECRET)
    headers = Headers({SIGNATURE_HEADER: f"  {value[:16]}{value[16:].upper()} "})
    verify_signature(headers, body(), WebhookSecrets(current=SECRET))


def test_given_the_previous_secret_during_a_rotation_when_verified_then_it_passes() -> None:
    verify_signature(signed(body(), "old"), body(), WebhookSecrets(current=SECRET, previous="old"))


def test_given_a_tampered_body_when_verified_then_signature_invalid() -> None:
    tampered = body().replace(b"in_transit", b"delivered!")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_signature(signed(body()), tampered, WebhookSecrets(current=SECRET))


def test_given_another_secret_when_verified_then_signature_invalid() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(signed(body(), "nope"), body(), WebhookSecrets(current=SECRET))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: "sha256=abc"},
        {SIGNATURE_HEADER: "hmac-sha256-hex="},
        {SIGNATURE_HEADER: "hmac-sha256-hex=zz\u00e9"},
    ],
)
def test_given_a_missing_or_malformed_header_when_verified_then_signature_invalid(
    headers: dict[str, str],
) -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(Headers(headers), body(), WebhookSecrets(current=SECRET))


# --------------------------------------------------------------------------- normalisation


def test_the_adapter_fits_the_source_protocol() -> None:
    adapter: SourceAdapter = ADAPTER
    assert adapter.name == "easypost"
    assert adapter.describe(Headers({})).delivery_id is None


def test_given_tracker_updated_when_normalised_then_one_shipment_status_changed() -> None:
    normalised = ADAPTER.normalise(signed(body()), body())

    assert normalised.topic == "tracker.updated"
    assert normalised.delivery_id == "evt_4f1d8ac2b0e911efa7c1ad3e2e9c4b17"
    assert not normalised.ignored
    (event,) = normalised.events
    assert isinstance(event, ShipmentStatusChanged)
    assert event.event_id == event_id(
        "easypost", "evt_4f1d8ac2b0e911efa7c1ad3e2e9c4b17", "ShipmentStatusChanged", 0
    )
    assert event.source == "easypost"
    assert event.order_id is None
    assert event.correlation_id == "easypost:shp_5c1e0d2b7a9f4e3d8c6b5a4f3e2d1c0b"
    data = event.data
    assert data is not None
    assert data.status is TrackingStatus.IN_TRANSIT
    assert data.carrier_status == "in_transit"
    assert data.previous_carrier_status == "pre_transit"
    assert data.tracking_code == "9400100208303109310001"
    assert data.shipment_id == "shp_5c1e0d2b7a9f4e3d8c6b5a4f3e2d1c0b"
    assert data.updated_at == datetime(2026, 11, 22, 4, 41, 10, tzinfo=UTC)
    assert event.occurred_at == data.updated_at
    assert data.latest is not None
    assert data.latest.message == "Arrived at USPS Regional Facility"
    assert data.latest.city == "LOS ANGELES"


def test_given_a_delivered_update_when_normalised_then_the_canonical_status_is_delivered() -> None:
    (event,) = ADAPTER.normalise(Headers({}), body("tracker_updated_delivered.json")).events
    assert isinstance(event, ShipmentStatusChanged)
    assert event.data is not None
    assert event.data.status is TrackingStatus.DELIVERED


def test_given_the_same_event_twice_when_normalised_then_the_same_event_id() -> None:
    first = ADAPTER.normalise(Headers({}), body()).events[0]
    again = ADAPTER.normalise(Headers({}), body()).events[0]
    assert first.event_id == again.event_id
    assert first == again


def test_given_another_description_when_normalised_then_acknowledged_and_ignored() -> None:
    raw = json.dumps(
        {"object": "Event", "id": "evt_1", "description": "batch.updated", "result": {}}
    ).encode()

    normalised = ADAPTER.normalise(Headers({}), raw)

    assert normalised.ignored
    assert normalised.events == ()
    assert normalised.delivery_id == "evt_1"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"object": "Event", "description": "tracker.updated"}).encode(),
        json.dumps(
            {"id": "evt_1", "description": "tracker.updated", "result": {"id": "trk_1"}}
        ).encode(),
        json.dumps(
            {
                "id": "evt_1",
                "description": "tracker.updated",
                "result": {
                    "id": "trk_1",
                    "tracking_code": "X",
                    "status": "in_transit",
                    "updated_at": "yesterday",
                },
            }
        ).encode(),
    ],
)
def test_given_a_malformed_body_when_normalised_then_malformed_payload(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        ADAPTER.normalise(Headers({}), raw)


# --------------------------------------------------------------------------- through ingestion


def test_given_the_ingest_service_with_the_source_when_delivered_three_times_then_one_event() -> (
    None
):
    fakes = Fakes(secrets=StaticSecrets(current=SECRET))
    deps = fakes.deps(secret_ids={"easypost": SECRET_ID}, sources=lambda name: ADAPTER)
    headers = {SIGNATURE_HEADER: sign(body(), SECRET), "Content-Type": "application/json"}

    results = [ingest_webhook("easypost", headers, body(), deps) for _ in range(3)]

    assert [r.status for r in results] == ["accepted", "duplicate", "duplicate"]
    assert results[0].delivery_id == "evt_4f1d8ac2b0e911efa7c1ad3e2e9c4b17"
    published = list(fakes.publisher.published)
    assert [e["DetailType"] for e in published] == ["ShipmentStatusChanged"]
    assert published[0]["Source"] == "storewire.easypost"


def test_given_the_ingest_service_with_a_bad_signature_when_delivered_then_refused() -> None:
    fakes = Fakes(secrets=StaticSecrets(current=SECRET))
    deps = fakes.deps(secret_ids={"easypost": SECRET_ID}, sources=lambda name: ADAPTER)

    with pytest.raises(SignatureInvalid):
        ingest_webhook("easypost", {SIGNATURE_HEADER: sign(body(), "x")}, body(), deps)

    assert fakes.publisher.published == []
