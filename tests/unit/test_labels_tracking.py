"""Tracking (ShipmentStatusChanged) in the label service, on hand-written fakes.

The order is found through its shipment; `delivered` is terminal; an update older than the
last applied one changes nothing; the order record's `shipment` moves forward only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fakes_labels import ORDER_ID, T0, stock_committed
from storewire.domain.events import (
    ShipmentStatusChanged,
    ShipmentStatusData,
    TrackingEvent,
    TrackingStatus,
    event_id,
)
from storewire.domain.shipments import TrackingBeforeLabel
from storewire.labels import handle_label_event
from test_labels_service import World


def tracking(
    world: World,
    status: TrackingStatus,
    at: datetime,
    *,
    delivery: str,
    shipment_id: str | None = None,
) -> ShipmentStatusChanged:
    record = world.store.get(ORDER_ID)
    shipment = shipment_id or (record.shipment_id if record else None) or "shp_unknown"
    return ShipmentStatusChanged(
        event_id=event_id("easypost", delivery, "ShipmentStatusChanged", 0),
        occurred_at=at,
        source="easypost",
        shop="easypost",
        channel="easypost",
        correlation_id=f"easypost:{shipment}",
        delivery_id=delivery,
        data=ShipmentStatusData(
            tracker_id="trk_1",
            shipment_id=shipment,
            tracking_code="9400100000000000000001",
            carrier="USPS",
            status=status,
            carrier_status=status.value,
            updated_at=at,
            latest=TrackingEvent(message=f"{status.value} scan", status=status.value, at=at),
        ),
    )


def labelled() -> World:
    world = World()
    world.placed()
    handle_label_event(stock_committed(), world.deps)
    return world


def shipment_status(world: World) -> str:
    record = world.orders.get(ORDER_ID)
    assert record is not None
    return record.shipment.status


def test_given_a_label_when_the_tracker_moves_then_the_order_ships_and_is_delivered() -> None:
    world = labelled()

    first = handle_label_event(
        tracking(world, TrackingStatus.IN_TRANSIT, T0 + timedelta(hours=1), delivery="e1"),
        world.deps,
    )
    assert (first.action, first.order_id) == ("tracking_applied", ORDER_ID)
    assert shipment_status(world) == "shipped"

    handle_label_event(
        tracking(world, TrackingStatus.DELIVERED, T0 + timedelta(hours=2), delivery="e2"),
        world.deps,
    )

    record = world.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.status == "delivered"
    assert record.shipment.details["tracking_status"] == "delivered"
    assert record.shipment.details["tracking_number"]  # the label's details are kept
    assert record.status == "delivered"
    summaries = [e.summary for e in record.timeline if e.event_type == "ShipmentStatusChanged"]
    assert summaries == [
        "tracking in_transit: in_transit scan",
        "tracking delivered: delivered scan",
    ]


@pytest.mark.parametrize("late_hours", [1, 5])
def test_given_delivered_when_a_late_update_arrives_then_nothing_rolls_back(
    late_hours: int,
) -> None:
    world = labelled()
    handle_label_event(
        tracking(world, TrackingStatus.DELIVERED, T0 + timedelta(hours=3), delivery="d"),
        world.deps,
    )
    before = world.orders.get(ORDER_ID)

    late = handle_label_event(
        tracking(world, TrackingStatus.IN_TRANSIT, T0 + timedelta(hours=late_hours), delivery="l"),
        world.deps,
    )

    assert late.action == "tracking_stale"
    assert world.orders.get(ORDER_ID) == before
    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.tracking is not None
    assert record.tracking.status is TrackingStatus.DELIVERED


def test_given_an_older_update_after_a_newer_one_then_it_is_ignored() -> None:
    world = labelled()
    handle_label_event(
        tracking(world, TrackingStatus.OUT_FOR_DELIVERY, T0 + timedelta(hours=2), delivery="n"),
        world.deps,
    )

    older = handle_label_event(
        tracking(world, TrackingStatus.PRE_TRANSIT, T0 + timedelta(hours=1), delivery="o"),
        world.deps,
    )

    assert older.action == "tracking_stale"
    record = world.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.details["tracking_status"] == "out_for_delivery"


def test_given_the_same_update_redelivered_then_applied_once() -> None:
    world = labelled()
    event = tracking(world, TrackingStatus.IN_TRANSIT, T0 + timedelta(hours=1), delivery="r")

    handle_label_event(event, world.deps)
    again = handle_label_event(event, world.deps)

    assert again.action == "tracking_applied"  # the same event: its steps are redone, once
    record = world.orders.get(ORDER_ID)
    assert record is not None
    assert [e.event_id for e in record.timeline].count(event.event_id) == 1


def test_given_a_status_the_order_does_not_follow_then_only_the_timeline_records_it() -> None:
    world = labelled()

    handle_label_event(
        tracking(world, TrackingStatus.EXCEPTION, T0 + timedelta(hours=1), delivery="x"),
        world.deps,
    )

    record = world.orders.get(ORDER_ID)
    assert record is not None
    assert record.shipment.status == "label_created"
    assert record.timeline[-1].summary.startswith("tracking exception")


def test_given_a_shipment_storewire_did_not_buy_then_the_update_is_ignored() -> None:
    world = labelled()

    result = handle_label_event(
        tracking(world, TrackingStatus.IN_TRANSIT, T0, delivery="u", shipment_id="shp_other"),
        world.deps,
    )

    assert result.action == "ignored"
    assert shipment_status(world) == "label_created"


def test_given_a_label_not_yet_on_the_order_then_tracking_is_retried() -> None:
    world = World()
    world.placed()
    handle_label_event(stock_committed(), world.deps)
    record = world.store.get(ORDER_ID)
    assert record is not None
    world.store.records[ORDER_ID] = record.model_copy(update={"steps": frozenset()})

    with pytest.raises(TrackingBeforeLabel):
        handle_label_event(
            tracking(world, TrackingStatus.IN_TRANSIT, T0, delivery="early"), world.deps
        )


def test_given_a_purchase_in_doubt_then_tracking_for_its_shipment_is_retried() -> None:
    # Found by the 10,000-order run: an attempt bought the label and died before recording
    # the purchase; the carrier's tracker for that shipment arrived while the record held only
    # the shipment. Ignoring it lost the tracking once the purchase was recorded on redrive.
    world = labelled()
    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.shipment_id
    world.store.records[ORDER_ID] = record.model_copy(update={"purchase": None})

    with pytest.raises(TrackingBeforeLabel):
        handle_label_event(
            tracking(world, TrackingStatus.IN_TRANSIT, T0, delivery="in-doubt"), world.deps
        )
    assert shipment_status(world) == "label_created"


def test_given_no_purchase_and_another_shipment_then_the_update_is_ignored() -> None:
    world = labelled()
    record = world.store.get(ORDER_ID)
    assert record is not None
    world.store.records[ORDER_ID] = record.model_copy(update={"purchase": None})

    result = handle_label_event(
        tracking(world, TrackingStatus.IN_TRANSIT, T0, delivery="x", shipment_id="shp_other"),
        world.deps,
    )

    assert result.action == "ignored"
