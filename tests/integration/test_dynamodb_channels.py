"""`DynamoDBChannelListingStore` against moto: the mapping and the forward-only push state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from stock_support import aws_env
from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
from storewire.domain.channels import ChannelListing

pytestmark = pytest.mark.integration

TABLE = "storewire-test-ChannelListingsTable"
AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBChannelListingStore]:
    aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        yield DynamoDBChannelListingStore(client, TABLE)


def mapped(store: DynamoDBChannelListingStore, location: str = "default") -> ChannelListing:
    return store.put_mapping(
        ChannelListing(
            sku="SW-TEE",
            location=location,
            shop="a.myshopify.com",
            inventory_item_id="gid://shopify/InventoryItem/1",
            location_id="gid://shopify/Location/1",
            mapped_at=AT,
        )
    )


def test_listings_of_a_sku_with_their_ids(store: DynamoDBChannelListingStore) -> None:
    mapped(store)
    mapped(store, location="*")

    listings = store.listings("SW-TEE")

    assert [(item.location, item.key) for item in listings] == [
        ("*", "shopify#a.myshopify.com#*"),
        ("default", "shopify#a.myshopify.com#default"),
    ]
    assert listings[0].mapped_at == AT
    assert store.listings("OTHER") == []


def test_the_push_state_only_moves_forward(store: DynamoDBChannelListingStore) -> None:
    listing = mapped(store)

    assert store.claim(listing, 5)
    assert store.claim(listing, 5)  # the same version again (a redelivery after a crash)
    assert not store.claim(listing, 4)  # older than the claim
    assert store.record_push(listing, 5, 7, AT)
    assert not store.record_push(listing, 5, 9, AT)
    assert not store.claim(listing, 5)  # pushed already
    assert store.claim(listing, 6)
    assert not store.record_push(listing, 4, 1, AT)

    current = store.get("SW-TEE", listing.key)
    assert current is not None
    assert (current.claimed_version, current.pushed_version, current.pushed_quantity) == (6, 5, 7)


def test_a_claim_on_a_listing_that_does_not_exist_is_refused(
    store: DynamoDBChannelListingStore,
) -> None:
    ghost = ChannelListing(sku="NONE", location="default", inventory_item_id="i", location_id="l")
    assert not store.claim(ghost, 1)
    assert store.get("NONE", ghost.key) is None


def test_remapping_the_same_ids_keeps_the_compare_value(store: DynamoDBChannelListingStore) -> None:
    listing = mapped(store)
    store.record_push(listing, 3, 4, AT)

    again = mapped(store)

    assert (again.pushed_version, again.pushed_quantity) == (3, 4)
