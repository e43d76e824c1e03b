"""The label service on hand-written fakes: one label per order, whatever happens."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from fakes_labels import (
    ORDER_ID,
    SHIP_FROM,
    SHIP_TO,
    CarrierCrash,
    Clock,
    FakeCarrier,
    InMemoryLabelStore,
    RecordingFulfilment,
    deps,
    line,
    order_data,
    order_placed,
    order_updated,
    stock_committed,
)
from fakes_orders import InMemoryOrderStore
from stock_samples import RecordingPublisher
from storewire.domain.money import Money
from storewire.domain.shipments import (
    InvalidShipment,
    LabelInProgress,
    LabelStatus,
    NoMatchingRate,
    ParcelPolicy,
    RatePolicy,
    ShipmentRequest,
    ShippingDetailsMissing,
    ShippingLine,
    build_parcel,
    grams_to_ounces,
    label_event_id,
)
from storewire.errors import PermanentUpstreamError, PublishFailed
from storewire.labels import LabelDeps, LabelPolicies, handle_label_event


class World:
    """A label service on fakes, with an order record and a recording bus."""

    def __init__(self, **overrides: object) -> None:
        self.clock = Clock()
        self.carrier = FakeCarrier(self.clock)
        self.store = InMemoryLabelStore()
        self.publisher = RecordingPublisher()
        self.orders = InMemoryOrderStore()
        self.fulfilment = RecordingFulfilment()
        self.deps: LabelDeps = deps(
            self.carrier,
            self.store,
            self.publisher,
            self.clock,
            orders=self.orders,
            fulfilment=self.fulfilment,
            **overrides,
        )

    def placed(self, **kwargs: object) -> None:
        event = order_placed(order_data(**kwargs))  # type: ignore[arg-type]
        self.orders.record_placed(event)
        handle_label_event(event, self.deps)

    def label_events(self) -> list[dict[str, object]]:
        return self.publisher.details("LabelCreated")


# --------------------------------------------------------------------------- the happy path


def test_given_a_committed_order_when_handled_then_one_label_is_bought_and_announced() -> None:
    world = World()
    world.placed()

    result = handle_label_event(stock_committed(), world.deps)

    assert result.action == "created"
    assert len(world.carrier.purchases) == 1
    (request,) = world.carrier.requests
    assert request.reference == ORDER_ID
    assert request.to_address == SHIP_TO
    assert request.from_address == SHIP_FROM
    assert request.parcel.weight_oz == grams_to_ounces(2 * 200 + 350)
    (label,) = world.label_events()
    assert label["event_id"] == label_event_id(ORDER_ID)
    assert label["source"] == "labels"
    assert label["order_id"] == ORDER_ID
    assert label["data"]["carrier"] == "USPS"
    assert label["data"]["service"] == "GroundAdvantage"
    assert label["data"]["cost"] == {"amount": "5.57", "currency": "USD"}
    assert label["data"]["tracking_number"].startswith("9400")
    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.status is LabelStatus.PURCHASED
    assert record.steps == {"order", "fulfilment", "published"}
    assert world.store.step_writes == 1  # the three steps are marked with one write


def test_given_a_label_when_bought_then_the_order_record_shipment_concern_has_it() -> None:
    world = World()
    world.placed()

    handle_label_event(stock_committed(), world.deps)

    shipment = world.orders.records[ORDER_ID].shipment
    assert shipment.status == "label_created"
    assert shipment.details["carrier"] == "USPS"
    assert shipment.details["service"] == "GroundAdvantage"
    assert shipment.details["tracking_number"].startswith("9400")
    assert shipment.details["label_url"].endswith(".png")
    assert shipment.details["cost"] == {"amount": "5.57", "currency": "USD"}
    assert shipment.details["status"] == "label_created"


def test_given_a_label_when_bought_then_the_storefront_gets_one_fulfilment_with_tracking() -> None:
    world = World()
    world.placed()

    handle_label_event(stock_committed(), world.deps)
    handle_label_event(stock_committed(), world.deps)

    (pushed,) = world.fulfilment.pushed
    assert pushed.external_order_id == "5745289347382"
    assert pushed.carrier == "USPS"
    assert pushed.idempotency_key == label_event_id(ORDER_ID)


def test_given_a_fixed_rate_policy_when_bought_then_that_service_is_bought() -> None:
    world = World()
    world.deps = dataclasses.replace(
        world.deps,
        policies=LabelPolicies(
            SHIP_FROM, rates=RatePolicy(mode="fixed", carrier="UPS", service="Ground")
        ),
    )
    world.placed()

    result = handle_label_event(stock_committed(), world.deps)

    assert result.purchase is not None
    assert (result.purchase.carrier, result.purchase.service) == ("UPS", "Ground")
    assert result.purchase.cost == Money.parse(Decimal("10.94"), "USD")


# --------------------------------------------------------------------------- exactly once


def test_given_the_same_commit_three_times_when_handled_then_one_label_one_event_id() -> None:
    world = World()
    world.placed()

    actions = [handle_label_event(stock_committed(), world.deps).action for _ in range(3)]

    assert actions == ["created", "already_created", "already_created"]
    assert len(world.carrier.purchases) == 1
    assert world.carrier.calls.count("create") == 1
    assert len(world.label_events()) == 1


def test_given_a_crash_right_after_the_buy_when_redelivered_then_the_purchase_is_recorded() -> None:
    # Given the carrier sells the label, then the Lambda dies before recording it
    world = World()
    world.placed()
    world.carrier.crash_after_buy = 1
    with pytest.raises(CarrierCrash):
        handle_label_event(stock_committed(), world.deps)
    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.purchase is None
    assert record.shipment_id is not None

    # When SQS redelivers the message after the visibility timeout (longer than the lease)
    world.clock.advance(180)
    result = handle_label_event(stock_committed(), world.deps)

    # Then the retry finds the bought shipment and records it; the carrier sold one label
    assert result.action == "created"
    assert result.purchase is not None
    assert result.purchase.shipment_id == record.shipment_id
    assert len(world.carrier.purchases) == 1
    assert world.carrier.calls.count("create") == 1
    assert world.carrier.calls.count("buy") == 1
    assert len(world.label_events()) == 1
    assert world.orders.records[ORDER_ID].shipment.status == "label_created"


def test_given_a_crash_after_the_create_when_redelivered_then_it_is_found_by_reference() -> None:
    world = World()
    world.placed()
    world.carrier.crash_after_create = 1
    with pytest.raises(CarrierCrash):
        handle_label_event(stock_committed(), world.deps)
    stored = world.store.get(ORDER_ID)
    assert stored is not None
    assert stored.shipment_id is None  # the crash came before the id was recorded

    world.clock.advance(180)
    handle_label_event(stock_committed(), world.deps)

    assert world.carrier.calls.count("create") == 1
    assert "find" in world.carrier.calls
    assert len(world.carrier.purchases) == 1
    (shipment_id, _) = world.carrier.purchases[0]
    assert shipment_id in world.carrier.shipments


def test_given_a_live_lease_when_a_duplicate_arrives_then_it_is_retried_later_not_bought() -> None:
    world = World()
    world.placed()
    world.carrier.crash_after_create = 1
    with pytest.raises(CarrierCrash):
        handle_label_event(stock_committed(), world.deps)

    world.clock.advance(30)  # the first attempt may still be running
    with pytest.raises(LabelInProgress):
        handle_label_event(stock_committed(), world.deps)

    assert world.carrier.purchases == []


def test_given_a_bought_shipment_at_the_carrier_when_retried_then_it_is_adopted_not_bought() -> (
    None
):
    # Given an earlier attempt created and bought a shipment but recorded neither
    world = World()
    world.placed()
    world.store.claim(
        ORDER_ID, owner="ghost", reference=ORDER_ID, now=world.clock(), lease_seconds=1
    )
    ghost = world.carrier.create_shipment(
        ShipmentRequest(
            reference=ORDER_ID,
            to_address=SHIP_TO,
            from_address=SHIP_FROM,
            parcel=build_parcel(
                (ShippingLine(line_id="L1", quantity=1, grams=10),), ParcelPolicy()
            ),
        )
    )
    world.carrier.buy(ghost.shipment_id, ghost.rates[0].rate_id)
    world.clock.advance(5)

    # When the commit is handled again
    result = handle_label_event(stock_committed(), world.deps)

    # Then that purchase is recorded and nothing more is created or bought
    assert result.purchase is not None
    assert result.purchase.shipment_id == ghost.shipment_id
    assert len(world.carrier.purchases) == 1
    assert world.carrier.calls.count("create") == 1


def test_given_the_bus_fails_after_buying_when_redelivered_then_the_same_id_is_published() -> None:
    world = World()
    world.placed()
    world.publisher.fail_next = 1

    with pytest.raises(PublishFailed):
        handle_label_event(stock_committed(), world.deps)
    result = handle_label_event(stock_committed(), world.deps)

    assert result.published == (label_event_id(ORDER_ID),)
    assert len(world.label_events()) == 1
    assert len(world.carrier.purchases) == 1
    assert len(world.fulfilment.pushed) == 1


# --------------------------------------------------------------------------- failures


def test_given_an_address_the_carrier_refuses_when_handled_then_permanent_and_marked_failed() -> (
    None
):
    world = World()
    world.carrier.refuse_street = "1 Nowhere Lane"
    world.placed(ship_to=SHIP_TO.model_copy(update={"address1": "1 Nowhere Lane"}))

    with pytest.raises(PermanentUpstreamError) as caught:
        handle_label_event(stock_committed(), world.deps)

    assert caught.value.code == "ADDRESS.VERIFY.FAILURE"
    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.status is LabelStatus.FAILED
    assert record.failure is not None
    assert "Address not found" in record.failure
    assert record.owner is None  # the lease is released: a redrive may try again
    shipment = world.orders.records[ORDER_ID].shipment
    assert shipment.status == "failed"
    assert "Address not found" in shipment.details["reason"]
    assert world.carrier.purchases == []
    assert world.label_events() == []


def test_given_a_failed_label_when_the_address_is_fixed_and_redriven_then_it_is_bought() -> None:
    world = World()
    world.carrier.refuse_street = "1 Nowhere Lane"
    world.placed(ship_to=SHIP_TO.model_copy(update={"address1": "1 Nowhere Lane"}))
    with pytest.raises(PermanentUpstreamError):
        handle_label_event(stock_committed(), world.deps)

    fixed = order_data(ship_to=SHIP_TO, updated_at=world.clock.now.replace(hour=16))
    handle_label_event(order_updated(fixed, "update-1"), world.deps)
    result = handle_label_event(stock_committed(), world.deps)

    assert result.action == "created"
    assert len(world.carrier.purchases) == 1
    assert world.orders.records[ORDER_ID].shipment.status == "label_created"


def test_given_no_rate_fits_the_policy_when_handled_then_permanent_with_a_clear_reason() -> None:
    world = World()
    world.deps = dataclasses.replace(
        world.deps,
        policies=LabelPolicies(SHIP_FROM, rates=RatePolicy(carriers=("DHL",))),
    )
    world.placed()

    with pytest.raises(NoMatchingRate, match="offered: FedEx FEDEX_2_DAY"):
        handle_label_event(stock_committed(), world.deps)

    assert world.carrier.purchases == []


def test_given_no_shipping_address_when_handled_then_permanent_invalid_shipment() -> None:
    world = World()
    world.placed(ship_to=None)

    with pytest.raises(InvalidShipment, match="no shipping address"):
        handle_label_event(stock_committed(), world.deps)


def test_given_a_commit_before_its_order_when_handled_then_retryable_and_nothing_bought() -> None:
    world = World()

    with pytest.raises(ShippingDetailsMissing):
        handle_label_event(stock_committed(), world.deps)

    assert world.carrier.calls == []


def test_given_a_cancelled_order_when_committed_then_no_label() -> None:
    world = World()
    world.placed(cancelled=True)

    result = handle_label_event(stock_committed(), world.deps)

    assert result.action == "ignored"
    assert world.carrier.calls == []


# --------------------------------------------------------------------------- snapshots


def test_given_a_newer_and_then_an_older_update_when_snapshotted_then_the_newer_is_kept() -> None:
    world = World()
    world.placed()
    newer = order_data(
        lines=(line("L1", "TEE-M", 2, 500),), updated_at=world.clock.now.replace(hour=17)
    )
    older = order_data(
        lines=(line("L1", "TEE-M", 2, 1),), updated_at=world.clock.now.replace(hour=16)
    )

    assert handle_label_event(order_updated(newer, "u-2"), world.deps).action == "snapshot"
    assert handle_label_event(order_updated(older, "u-1"), world.deps).action == "unchanged"
    handle_label_event(stock_committed((("L1", "TEE-M", 2),)), world.deps)

    assert world.carrier.requests[0].parcel.weight_oz == grams_to_ounces(1000)


def test_given_lines_without_weights_when_bought_then_the_default_parcel_weight() -> None:
    world = World()
    world.placed(lines=(line("L1", "TEE-M", 1, 0),))

    handle_label_event(stock_committed((("L1", "TEE-M", 1),)), world.deps)

    parcel = world.carrier.requests[0].parcel
    assert parcel.weight_oz == Decimal(16)
    assert parcel.weight_estimated


def test_given_no_orders_or_fulfilment_port_when_bought_then_the_label_still_goes_out() -> None:
    world = World()
    world.deps = dataclasses.replace(world.deps, orders=None, fulfilment=None)
    world.placed()

    handle_label_event(stock_committed(), world.deps)

    record = world.store.get(ORDER_ID)
    assert record is not None
    assert record.steps == {"published"}
    assert len(world.label_events()) == 1


def test_given_an_unrelated_event_when_handled_then_ignored() -> None:
    world = World()
    event = order_placed().model_copy(update={"event_type": "CustomerUpserted"})
    assert handle_label_event(event, world.deps).action == "ignored"
