"""The label store contract, proved on DynamoDB (moto) and on the in-memory fake alike."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from fakes_labels import (
    ORDER_ID,
    T0,
    InMemoryLabelStore,
    create_labels_table,
    order_data,
    order_placed,
)
from stock_support import aws_env
from storewire.adapters.dynamodb_labels import DynamoDBLabelStore
from storewire.domain.money import Money
from storewire.domain.shipments import (
    LabelInProgress,
    LabelPurchase,
    LabelStatus,
    TrackingState,
    TrackingStatus,
    shipping_order,
)
from storewire.labels import LabelStore

pytestmark = pytest.mark.integration

TABLE = "storewire-test-LabelsTable"
LEASE = 120


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[LabelStore]:
    if request.param == "memory":
        yield InMemoryLabelStore()
        return
    aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_labels_table(client, TABLE)
        yield DynamoDBLabelStore(client, TABLE)


def purchase(shipment_id: str = "shp_1") -> LabelPurchase:
    return LabelPurchase(
        shipment_id=shipment_id,
        rate_id="rate_1",
        carrier="USPS",
        service="GroundAdvantage",
        tracking_number="9400100000000000000001",
        label_url="https://labels.example/1.png",
        cost=Money.parse(Decimal("5.57"), "USD"),
        purchased_at=T0,
    )


def claim(store: LabelStore, owner: str, minutes: float = 0) -> Any:
    return store.claim(
        ORDER_ID,
        owner=owner,
        reference=ORDER_ID,
        now=T0 + timedelta(minutes=minutes),
        lease_seconds=LEASE,
    )


def test_given_nothing_when_claimed_then_the_intent_is_recorded_with_a_lease(
    store: LabelStore,
) -> None:
    record = claim(store, "a")

    assert record.status is LabelStatus.CLAIMED
    assert record.owner == "a"
    assert record.reference == ORDER_ID
    assert record.attempts == 1
    assert record.lease_until == T0 + timedelta(seconds=LEASE)


def test_given_a_live_lease_when_another_attempt_claims_then_label_in_progress(
    store: LabelStore,
) -> None:
    claim(store, "a")

    with pytest.raises(LabelInProgress):
        claim(store, "b", minutes=1)


def test_given_an_expired_lease_when_another_attempt_claims_then_it_takes_over(
    store: LabelStore,
) -> None:
    claim(store, "a")
    store.record_shipment(ORDER_ID, owner="a", shipment_id="shp_1", now=T0, lease_seconds=LEASE)

    record = claim(store, "b", minutes=3)

    assert record.owner == "b"
    assert record.status is LabelStatus.CREATED
    assert record.shipment_id == "shp_1"
    assert record.attempts == 2
    assert record.claimed_at == T0


def test_given_a_lost_lease_when_recording_a_shipment_then_label_in_progress(
    store: LabelStore,
) -> None:
    claim(store, "a")
    claim(store, "b", minutes=3)

    with pytest.raises(LabelInProgress):
        store.record_shipment(ORDER_ID, owner="a", shipment_id="shp_2", now=T0, lease_seconds=LEASE)


def test_given_a_purchase_when_recorded_twice_or_differently_then_the_first_wins(
    store: LabelStore,
) -> None:
    claim(store, "a")
    store.record_shipment(ORDER_ID, owner="a", shipment_id="shp_1", now=T0, lease_seconds=LEASE)

    first = store.record_purchase(ORDER_ID, purchase("shp_1"), now=T0)
    again = store.record_purchase(ORDER_ID, purchase("shp_1"), now=T0)
    other = store.record_purchase(ORDER_ID, purchase("shp_2"), now=T0)

    assert first.status is LabelStatus.PURCHASED
    assert first.purchase == purchase("shp_1")
    assert first.owner is None
    assert again.purchase == other.purchase == purchase("shp_1")
    found = store.find_by_shipment("shp_1")
    assert found is not None
    assert found.order_id == ORDER_ID


def test_given_a_purchase_when_claimed_again_then_the_record_comes_back_untouched(
    store: LabelStore,
) -> None:
    claim(store, "a")
    store.record_purchase(ORDER_ID, purchase(), now=T0)

    record = claim(store, "b", minutes=1)

    assert record.purchased
    assert record.owner is None


def test_given_a_failure_when_recorded_then_the_lease_is_released_for_a_redrive(
    store: LabelStore,
) -> None:
    claim(store, "a")
    store.record_failure(ORDER_ID, owner="a", reason="InvalidShipment: no address", now=T0)

    failed = store.get(ORDER_ID)
    retried = claim(store, "b", minutes=0.5)

    assert failed is not None
    assert failed.status is LabelStatus.FAILED
    assert failed.failure == "InvalidShipment: no address"
    assert retried.owner == "b"


def test_given_steps_when_marked_then_each_is_kept_once(store: LabelStore) -> None:
    claim(store, "a")
    store.record_purchase(ORDER_ID, purchase(), now=T0)

    store.mark_steps(ORDER_ID, ["order", "published", "order"], now=T0)
    store.mark_steps(ORDER_ID, [], now=T0)
    store.mark_steps(ORDER_ID, ["order", "fulfilment"], now=T0)

    record = store.get(ORDER_ID)
    assert record is not None
    assert record.steps == {"order", "fulfilment", "published"}


def test_given_snapshots_when_saved_then_only_newer_ones_replace(store: LabelStore) -> None:
    older = shipping_order(order_placed(order_data(updated_at=T0)))
    newer = shipping_order(order_placed(order_data(updated_at=T0 + timedelta(hours=1))))

    assert store.save_order(newer)
    assert not store.save_order(older)
    assert not store.save_order(newer)

    record = store.get(ORDER_ID)
    assert record is not None
    assert record.order == newer
    assert record.status is None


def test_given_a_snapshot_and_a_claim_when_read_then_both_are_on_one_record(
    store: LabelStore,
) -> None:
    store.save_order(shipping_order(order_placed()))
    claim(store, "a")

    record = store.get(ORDER_ID)
    assert record is not None
    assert record.order is not None
    assert record.owner == "a"
    assert store.find_by_shipment("shp_unknown") is None


def _tracking(status: TrackingStatus, hours: float, event: str) -> TrackingState:
    return TrackingState(status=status, updated_at=T0 + timedelta(hours=hours), event_id=event)


def test_given_tracking_updates_when_recorded_then_newer_apply_and_delivered_is_terminal(
    store: LabelStore,
) -> None:
    claim(store, "a")
    store.record_shipment(ORDER_ID, owner="a", shipment_id="shp_1", now=T0, lease_seconds=LEASE)
    store.record_purchase(ORDER_ID, purchase("shp_1"), now=T0)

    applied = [
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.IN_TRANSIT, 1, "e1"), now=T0),
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.IN_TRANSIT, 1, "e1"), now=T0),
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.PRE_TRANSIT, 0.5, "e0"), now=T0),
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.DELIVERED, 3, "e3"), now=T0),
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.IN_TRANSIT, 4, "e4"), now=T0),
        store.record_tracking(ORDER_ID, _tracking(TrackingStatus.IN_TRANSIT, 2, "e2"), now=T0),
    ]

    # new, the same event again (a redelivery), older, newer, after delivered, older
    assert applied == [True, True, False, True, False, False]
    record = store.get(ORDER_ID)
    assert record is not None
    assert record.tracking == _tracking(TrackingStatus.DELIVERED, 3, "e3")
    found = store.find_by_shipment("shp_1")
    assert found is not None
    assert found.tracking == record.tracking


def test_given_no_label_when_tracking_is_recorded_then_refused(store: LabelStore) -> None:
    assert not store.record_tracking(
        "shopify:x:1", _tracking(TrackingStatus.IN_TRANSIT, 1, "e1"), now=T0
    )
    assert store.get("shopify:x:1") is None
