from __future__ import annotations

import json
from types import ModuleType

import pytest
from samples import DEV_SECRET, SHOPIFY_TOPICS, sample_event, sample_payload
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.shopify import ADAPTER


def test_given_the_payloads_when_events_are_regenerated_then_the_committed_files_match(
    events_generator: ModuleType,
) -> None:
    for path, event in events_generator.build_samples().items():
        assert path.read_text(encoding="utf-8") == events_generator.render(event), (
            f"{path.name} is stale: run `uv run --frozen python events/generate.py`"
        )


def test_given_the_generator_when_listing_topics_then_every_handled_topic_has_a_sample(
    events_generator: ModuleType,
) -> None:
    assert set(events_generator.SAMPLES) == set(SHOPIFY_TOPICS)


@pytest.mark.parametrize("topic", SHOPIFY_TOPICS)
def test_given_a_sample_event_when_verified_with_the_dev_secret_then_it_passes(
    topic: str,
) -> None:
    event = sample_event(topic)
    headers = Headers(event["headers"])

    ADAPTER.verify(headers, event["body"].encode(), WebhookSecrets(current=DEV_SECRET))
    assert headers["x-shopify-topic"] == topic
    assert headers["x-shopify-shop-domain"] == "storewire-demo.myshopify.com"
    assert event["pathParameters"] == {"source": "shopify"}
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == sample_payload(topic)


def test_given_the_order_samples_when_read_then_they_use_storewire_skus_and_jane() -> None:
    order = sample_payload("orders/create")

    assert {line["sku"] for line in order["line_items"]} >= {"SW-TEE-BLK-M"}
    assert order["customer"]["email"] == "jane.doe@example.com"
    assert sample_payload("customers/update")["email"] == "jane.doe@example.com"
