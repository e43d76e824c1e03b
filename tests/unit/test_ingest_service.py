from __future__ import annotations

import json
from typing import Any

import pytest
from ingest_fakes import DEV_SECRET, SECRET_ID, Fakes
from samples import SHOPIFY_TOPICS, sample_event, sample_payload
from storewire.domain.events import MAX_ENTRY_BYTES, OrderData, parse_event
from storewire.errors import (
    ConfigurationError,
    DeliveryInProgress,
    MalformedPayload,
    PayloadTooLarge,
    PublishFailed,
    SignatureInvalid,
    StaleWebhook,
    UnknownSource,
)
from storewire.ingest import IngestResult, dedupe_key, ingest_webhook
from storewire.sources.shopify import signed_headers

DELIVERY = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def deliver(fakes: Fakes, topic: str = "orders/create", **deps: Any) -> IngestResult:
    event = sample_event(topic)
    return ingest_webhook("shopify", event["headers"], event["body"].encode(), fakes.deps(**deps))


@pytest.mark.parametrize("topic", SHOPIFY_TOPICS)
def test_given_a_valid_delivery_when_ingested_then_its_events_are_published_once(
    topic: str,
) -> None:
    fakes = Fakes()

    result = deliver(fakes, topic)

    assert result.status == "accepted"
    assert len(result.event_ids) == 1
    assert fakes.publisher.event_ids == list(result.event_ids)
    (entry,) = fakes.publisher.published
    assert entry["Source"] == "storewire.shopify"
    assert entry["DetailType"] == result.events[0].event_type
    assert parse_event(entry["Detail"]) == result.events[0]
    record = fakes.dedupe.records[dedupe_key("shopify", result.delivery_id)]
    assert (record.status, record.event_ids) == ("done", result.event_ids)


def test_given_a_delivery_already_processed_when_redelivered_then_nothing_is_emitted() -> None:
    fakes = Fakes()
    first = deliver(fakes)

    second = deliver(fakes)

    assert first.status == "accepted"
    assert second.status == "duplicate"
    assert second.body() == {"status": "duplicate"}
    assert len(fakes.publisher.published) == 1


def test_given_a_delivery_in_progress_when_redelivered_then_409_and_nothing_emitted() -> None:
    fakes = Fakes()
    fakes.dedupe.claim(dedupe_key("shopify", DELIVERY), 259200)  # another invocation holds it

    with pytest.raises(DeliveryInProgress):
        deliver(fakes)
    assert fakes.publisher.attempts == 0


def test_given_a_stuck_claim_when_its_lease_expired_then_the_retry_takes_over() -> None:
    fakes = Fakes()
    fakes.dedupe.claim(dedupe_key("shopify", DELIVERY), 259200)
    fakes.clock.advance(31)

    result = deliver(fakes)

    assert result.status == "accepted"
    assert len(fakes.publisher.published) == 1


def test_given_the_bus_fails_when_ingested_then_the_claim_is_released_and_a_retry_succeeds() -> (
    None
):
    fakes = Fakes()
    fakes.publisher.fail_next = 1

    with pytest.raises(PublishFailed):
        deliver(fakes)
    assert dedupe_key("shopify", DELIVERY) not in fakes.dedupe.records
    assert ("release", dedupe_key("shopify", DELIVERY)) in fakes.dedupe.calls

    retried = deliver(fakes)

    assert retried.status == "accepted"
    assert fakes.publisher.attempts == 2
    assert fakes.publisher.event_ids == list(retried.event_ids)
    assert deliver(fakes).status == "duplicate"


def test_given_a_failed_publish_when_retried_then_the_event_ids_are_the_same() -> None:
    failing, healthy = Fakes(), Fakes()
    failing.publisher.fail_next = 1
    with pytest.raises(PublishFailed):
        deliver(failing)

    assert deliver(failing).event_ids == deliver(healthy).event_ids


def test_given_a_tampered_body_when_ingested_then_401_and_nothing_is_stored() -> None:
    fakes = Fakes()
    event = sample_event("orders/create")
    body = event["body"].replace("SW-TEE-BLK-M", "SW-TEE-BLK-XL").encode()

    with pytest.raises(SignatureInvalid):
        ingest_webhook("shopify", event["headers"], body, fakes.deps())
    assert fakes.dedupe.calls == []
    assert fakes.publisher.attempts == 0


def test_given_a_rotated_secret_when_the_cache_is_stale_then_a_forced_fetch_verifies_it() -> None:
    fakes = Fakes()
    fakes.secrets.stored[SECRET_ID] = {"current": "shpss_rotated", "previous": "x"}
    body = json.dumps(sample_payload("orders/create")).encode()
    headers = signed_headers(
        "orders/create", body, shop="s.myshopify.com", webhook_id="w-2", secret="shpss_rotated"
    )

    result = ingest_webhook("shopify", headers, body, fakes.deps(max_age_seconds=0))

    assert result.status == "accepted"
    assert fakes.secrets.forced == 1


def test_given_a_rotation_when_signed_with_the_previous_secret_then_it_is_accepted() -> None:
    fakes = Fakes()
    fakes.secrets.cached[SECRET_ID] = {
        "current": "shpss_rotated",
        "previous": fakes.secrets.stored[SECRET_ID]["current"],
    }

    assert deliver(fakes).status == "accepted"
    assert fakes.secrets.forced == 0


def test_given_a_secret_without_current_when_ingested_then_configuration_error() -> None:
    fakes = Fakes()
    fakes.secrets.cached[SECRET_ID] = {"previous": "x"}

    with pytest.raises(ConfigurationError):
        deliver(fakes)


def test_given_a_body_at_the_limit_when_ingested_then_it_is_processed() -> None:
    fakes = Fakes()
    size = len(sample_event("orders/create")["body"].encode())

    assert deliver(fakes, max_body_bytes=size).status == "accepted"


def test_given_a_body_one_byte_over_the_limit_when_ingested_then_413_before_anything() -> None:
    fakes = Fakes()
    size = len(sample_event("orders/create")["body"].encode())

    with pytest.raises(PayloadTooLarge):
        deliver(fakes, max_body_bytes=size - 1)
    assert fakes.dedupe.calls == []
    assert fakes.secrets.forced == 0


def test_given_an_unsigned_oversized_body_when_ingested_then_413_not_401() -> None:
    fakes = Fakes()

    with pytest.raises(PayloadTooLarge):
        ingest_webhook("shopify", {}, b"x" * 11, fakes.deps(max_body_bytes=10))


def test_given_an_unknown_source_when_ingested_then_404() -> None:
    with pytest.raises(UnknownSource):
        ingest_webhook("woocommerce", {}, b"{}", Fakes().deps())


def test_given_an_ignored_topic_when_ingested_then_200_and_nothing_stored_or_emitted() -> None:
    fakes = Fakes()
    body = b'{"id": 632910392, "title": "IPod Nano - 8GB"}'
    headers = signed_headers(
        "products/update",
        body,
        shop="s.myshopify.com",
        webhook_id="w-3",
        secret=DEV_SECRET,
    )

    result = ingest_webhook("shopify", headers, body, fakes.deps(max_age_seconds=0))

    assert result.status == "ignored"
    assert result.body() == {"status": "ignored", "topic": "products/update"}
    assert fakes.dedupe.calls == []
    assert fakes.publisher.attempts == 0


def test_given_a_malformed_body_when_ingested_then_400_and_nothing_stored() -> None:
    fakes = Fakes()
    body = b'{"id": 1, "line_items": "nope"}'
    headers = signed_headers(
        "orders/create",
        body,
        shop="s.myshopify.com",
        webhook_id="w-4",
        secret=DEV_SECRET,
    )

    with pytest.raises(MalformedPayload):
        ingest_webhook("shopify", headers, body, fakes.deps(max_age_seconds=0))
    assert fakes.dedupe.calls == []


def test_given_a_delivery_older_than_the_tolerance_when_ingested_then_stale_401() -> None:
    fakes = Fakes()
    fakes.clock.advance(259200 + 3600 * 24 * 6)

    with pytest.raises(StaleWebhook):
        deliver(fakes)
    assert fakes.dedupe.calls == []


def test_given_the_tolerance_turned_off_when_an_old_delivery_arrives_then_it_is_accepted() -> None:
    fakes = Fakes()
    fakes.clock.advance(3600 * 24 * 30)

    assert deliver(fakes, max_age_seconds=0).status == "accepted"


def big_order(lines: int = 300) -> bytes:
    payload = sample_payload("orders/create")
    template = payload["line_items"][0]
    payload["line_items"] = [
        {
            **template,
            "id": 15000000000000 + i,
            "sku": f"SW-TEE-{i:04d}",
            # Shopify allows 255 characters for each of these.
            "title": f"Storewire Organic Tee, limited edition print no. {i:04d} ".ljust(255, "x"),
            "variant_title": "Black / M / Oversized fit / Organic cotton / ".ljust(255, "y"),
            "name": "Storewire Organic Tee - Black / M".ljust(255, "z"),
            "quantity": 1,
        }
        for i in range(lines)
    ]
    return json.dumps(payload).encode()


def test_given_a_300_line_order_when_ingested_then_its_data_is_claim_checked() -> None:
    fakes = Fakes()
    body = big_order()
    headers = signed_headers(
        "orders/create",
        body,
        shop="s.myshopify.com",
        webhook_id="w-big",
        secret=DEV_SECRET,
    )

    result = ingest_webhook("shopify", headers, body, fakes.deps(max_age_seconds=0))

    (entry,) = fakes.publisher.published
    assert len(entry["Detail"].encode()) < MAX_ENTRY_BYTES
    published = parse_event(entry["Detail"])
    assert published.data is None
    assert published.claim_check is not None
    assert published.claim_check.key == f"claim-checks/{published.event_id}.json"
    stored = fakes.claim_checks.load(published.claim_check)
    assert published.claim_check.size == len(stored) > MAX_ENTRY_BYTES
    data = OrderData.model_validate_json(stored)
    assert len(data.lines) == 300
    assert result.claim_checked == 1
    assert result.event_ids == (published.event_id,)
