"""The pure shipment domain: parcels, rate policy, existing shipments, tracking guard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from fakes_labels import SHIP_FROM, SHIP_TO, T0, order_placed
from hypothesis import given
from hypothesis import strategies as st
from storewire.domain.money import Money
from storewire.domain.shipments import (
    CarrierShipment,
    InvalidShipment,
    LabelCreated,
    NoMatchingRate,
    NoRatesOffered,
    ParcelPolicy,
    Rate,
    RatePolicy,
    ShipmentStatusChanged,
    ShippingLine,
    TrackingState,
    TrackingStatus,
    build_parcel,
    canonical_tracking_status,
    choose_rate,
    grams_to_ounces,
    label_event_id,
    lines_to_ship,
    pick_existing,
    shipping_order,
    tracking_update_applies,
)
from storewire.errors import PermanentError, RetryableError


def rate(
    carrier: str, service: str, amount: str, days: int | None = 3, currency: str = "USD"
) -> Rate:
    return Rate(
        rate_id=f"rate_{carrier}_{service}",
        carrier=carrier,
        service=service,
        amount=Money.parse(Decimal(amount), currency),
        delivery_days=days,
    )


RATES = (
    rate("USPS", "GroundAdvantage", "5.57", 4),
    rate("USPS", "Priority", "9.85", 2),
    rate("UPS", "Ground", "10.94", 4),
    rate("FedEx", "FEDEX_2_DAY", "22.45", 2),
)


# --------------------------------------------------------------------------- parcel


@pytest.mark.parametrize(
    ("grams", "ounces"),
    [(0, "0.0"), (1, "0.1"), (28, "1.0"), (29, "1.1"), (454, "16.1"), (1000, "35.3")],
)
def test_given_grams_when_converted_then_ounces_round_up_to_a_tenth(
    grams: int, ounces: str
) -> None:
    assert grams_to_ounces(grams) == Decimal(ounces)


@given(st.integers(min_value=0, max_value=10_000_000))
def test_given_any_weight_when_converted_then_never_under_declared(grams: int) -> None:
    ounces = grams_to_ounces(grams)
    assert ounces * Decimal("28.349523125") >= grams
    assert ounces - Decimal("0.1") < Decimal(grams) / Decimal("28.349523125")


def test_given_weighed_lines_when_the_parcel_is_built_then_weights_and_tare_sum() -> None:
    lines = (
        ShippingLine(line_id="L1", quantity=2, grams=200),
        ShippingLine(line_id="L2", quantity=1, grams=350),
    )

    parcel = build_parcel(lines, ParcelPolicy(tare_grams=100))

    assert parcel.weight_oz == grams_to_ounces(850)  # 30.0 oz
    assert parcel.weight_oz == Decimal("30.0")
    assert not parcel.weight_estimated
    assert (parcel.length, parcel.width, parcel.height) == (Decimal(10), Decimal(8), Decimal(4))


def test_given_no_weights_when_the_parcel_is_built_then_the_default_weight_is_used() -> None:
    lines = (ShippingLine(line_id="L1", quantity=3, grams=0),)

    parcel = build_parcel(lines, ParcelPolicy(default_weight_oz=Decimal(12)))

    assert parcel.weight_oz == Decimal(12)
    assert parcel.weight_estimated


def test_given_one_unweighed_line_when_built_then_at_least_the_default_and_estimated() -> None:
    heavy = (
        ShippingLine(line_id="L1", quantity=1, grams=2000),
        ShippingLine(line_id="L2", quantity=1, grams=0),
    )
    light = (
        ShippingLine(line_id="L1", quantity=1, grams=10),
        ShippingLine(line_id="L2", quantity=1, grams=0),
    )

    assert build_parcel(heavy, ParcelPolicy()).weight_oz == grams_to_ounces(2000)
    assert build_parcel(light, ParcelPolicy()).weight_oz == Decimal(16)
    assert build_parcel(heavy, ParcelPolicy()).weight_estimated


def test_given_nothing_to_ship_when_the_parcel_is_built_then_invalid_shipment() -> None:
    with pytest.raises(InvalidShipment):
        build_parcel((), ParcelPolicy())


def test_given_committed_units_when_lines_are_chosen_then_they_ship_and_untracked_lines_too() -> (
    None
):
    order = shipping_order(order_placed())
    order = order.model_copy(
        update={
            "lines": (
                *order.lines,
                ShippingLine(line_id="L3", sku=None, quantity=1, grams=50),
                ShippingLine(
                    line_id="L4", sku="GIFT", quantity=1, grams=0, requires_shipping=False
                ),
            )
        }
    )

    shipped = lines_to_ship(order, {"L1": 1, "L2": 0})

    assert [(s.line_id, s.quantity) for s in shipped] == [("L1", 1), ("L3", 1)]


def test_given_an_order_event_when_snapshotted_then_address_lines_and_time_are_kept() -> None:
    order = shipping_order(order_placed())

    assert order.ship_to == SHIP_TO
    assert [(line.line_id, line.grams, line.quantity) for line in order.lines] == [
        ("L1", 200, 2),
        ("L2", 350, 1),
    ]
    assert order.storefront_updated_at == T0
    assert not order.cancelled


# --------------------------------------------------------------------------- rate policy


def test_given_the_default_policy_when_choosing_then_the_cheapest_rate_wins() -> None:
    assert choose_rate(RATES, RatePolicy()).service == "GroundAdvantage"


def test_given_allowed_carriers_when_choosing_then_the_cheapest_of_those_wins() -> None:
    chosen = choose_rate(RATES, RatePolicy(carriers=("ups", "FedEx")))
    assert (chosen.carrier, chosen.service) == ("UPS", "Ground")


def test_given_allowed_services_when_choosing_then_only_those_are_considered() -> None:
    chosen = choose_rate(RATES, RatePolicy(services=("Priority", "FEDEX_2_DAY")))
    assert chosen.service == "Priority"


def test_given_a_fixed_policy_when_choosing_then_exactly_that_rate_even_if_dearer() -> None:
    chosen = choose_rate(RATES, RatePolicy(mode="fixed", carrier="FedEx", service="fedex_2_day"))
    assert chosen.rate_id == "rate_FedEx_FEDEX_2_DAY"


def test_given_a_tie_on_price_when_choosing_then_the_faster_one_then_names_decide() -> None:
    tied = (rate("UPS", "Ground", "7.00", 4), rate("USPS", "Priority", "7.00", 2))
    assert choose_rate(tied, RatePolicy()).service == "Priority"
    assert choose_rate(tuple(reversed(tied)), RatePolicy()).service == "Priority"


def test_given_rates_in_another_currency_when_choosing_then_they_are_ignored() -> None:
    rates = (rate("CanadaPost", "Expedited", "1.00", currency="CAD"), *RATES)
    assert choose_rate(rates, RatePolicy()).carrier == "USPS"


def test_given_no_rate_fits_when_choosing_then_a_permanent_error_names_what_was_offered() -> None:
    with pytest.raises(NoMatchingRate) as caught:
        choose_rate(RATES, RatePolicy(mode="fixed", carrier="DHL", service="Express"))

    assert isinstance(caught.value, PermanentError)
    assert "USPS GroundAdvantage" in caught.value.message
    assert "fixed DHL Express" in caught.value.message


def test_given_no_rates_at_all_when_choosing_then_retryable_with_the_carrier_messages() -> None:
    with pytest.raises(NoRatesOffered) as caught:
        choose_rate((), RatePolicy(), carrier_messages=("UPS: service unavailable",))

    assert isinstance(caught.value, RetryableError)
    assert "UPS: service unavailable" in caught.value.message


def test_given_a_fixed_policy_without_a_service_when_built_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="names both"):
        RatePolicy(mode="fixed", carrier="UPS")


# --------------------------------------------------------------------------- existing shipments


def shipment(
    sid: str, minutes: int, *, bought: bool = False, reference: str = "ref"
) -> CarrierShipment:
    return CarrierShipment(
        shipment_id=sid,
        reference=reference,
        rates=RATES,
        selected_rate=RATES[0] if bought else None,
        tracking_code="9400" if bought else None,
        label_url="https://l/1.png" if bought else None,
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_given_shipments_by_reference_when_picking_then_a_bought_one_wins_over_newer() -> None:
    found = [
        shipment("shp_a", 1, bought=True),
        shipment("shp_b", 2),
        shipment("shp_c", 3, reference="x"),
    ]
    assert pick_existing(found, "ref") == found[0]


def test_given_only_unbought_shipments_when_picking_then_the_newest() -> None:
    found = [shipment("shp_a", 1), shipment("shp_b", 2)]
    picked = pick_existing(found, "ref")
    assert picked is not None
    assert picked.shipment_id == "shp_b"
    assert pick_existing(found, "other") is None


# --------------------------------------------------------------------------- tracking


@pytest.mark.parametrize(
    ("easypost", "canonical"),
    [
        ("pre_transit", TrackingStatus.PRE_TRANSIT),
        ("in_transit", TrackingStatus.IN_TRANSIT),
        ("out_for_delivery", TrackingStatus.OUT_FOR_DELIVERY),
        ("available_for_pickup", TrackingStatus.AVAILABLE_FOR_PICKUP),
        ("delivered", TrackingStatus.DELIVERED),
        ("return_to_sender", TrackingStatus.RETURNED),
        ("failure", TrackingStatus.EXCEPTION),
        ("error", TrackingStatus.EXCEPTION),
        ("cancelled", TrackingStatus.CANCELLED),
        ("unknown", TrackingStatus.UNKNOWN),
        ("something_new", TrackingStatus.UNKNOWN),
        (None, TrackingStatus.UNKNOWN),
    ],
)
def test_given_an_easypost_status_when_mapped_then_the_canonical_name(
    easypost: str | None, canonical: TrackingStatus
) -> None:
    assert canonical_tracking_status(easypost) is canonical


def test_given_nothing_applied_when_an_update_comes_then_it_applies() -> None:
    assert tracking_update_applies(None, TrackingStatus.IN_TRANSIT, T0)


def test_given_delivered_when_a_later_in_transit_update_comes_then_it_never_rolls_back() -> None:
    delivered = TrackingState(status=TrackingStatus.DELIVERED, updated_at=T0)

    assert not tracking_update_applies(delivered, TrackingStatus.IN_TRANSIT, T0 + timedelta(days=1))
    assert not tracking_update_applies(delivered, TrackingStatus.EXCEPTION, T0 + timedelta(days=1))
    assert not tracking_update_applies(delivered, TrackingStatus.DELIVERED, T0 + timedelta(days=1))


def test_given_in_transit_when_an_older_update_arrives_late_then_it_is_ignored() -> None:
    current = TrackingState(status=TrackingStatus.OUT_FOR_DELIVERY, updated_at=T0)

    assert not tracking_update_applies(current, TrackingStatus.IN_TRANSIT, T0 - timedelta(hours=1))


def test_given_in_transit_when_a_newer_update_arrives_then_it_applies() -> None:
    current = TrackingState(status=TrackingStatus.IN_TRANSIT, updated_at=T0)

    assert tracking_update_applies(current, TrackingStatus.DELIVERED, T0 + timedelta(hours=5))
    assert tracking_update_applies(current, TrackingStatus.EXCEPTION, T0 + timedelta(hours=5))


def test_given_the_same_update_twice_when_guarded_then_the_duplicate_does_not_apply() -> None:
    current = TrackingState(status=TrackingStatus.IN_TRANSIT, updated_at=T0)

    assert not tracking_update_applies(current, TrackingStatus.IN_TRANSIT, T0)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(TrackingStatus)), st.integers(min_value=0, max_value=50)),
        min_size=1,
        max_size=20,
    )
)
def test_given_any_order_of_updates_when_guarded_then_delivered_stays_once_reached(
    updates: list[tuple[TrackingStatus, int]],
) -> None:
    state: TrackingState | None = None
    for status, hour in updates:
        at = T0 + timedelta(hours=hour)
        if tracking_update_applies(state, status, at):
            if state is not None:
                assert state.status is not TrackingStatus.DELIVERED
                assert at >= state.updated_at
            state = TrackingState(status=status, updated_at=at)


# --------------------------------------------------------------------------- events


def test_given_an_order_when_its_label_event_id_is_derived_then_it_is_stable_and_distinct() -> None:
    assert label_event_id("a") == label_event_id("a")
    assert label_event_id("a") != label_event_id("b")
    assert LabelCreated.model_fields["event_type"].default == "LabelCreated"
    assert ShipmentStatusChanged.model_fields["event_type"].default == "ShipmentStatusChanged"
    assert SHIP_FROM.country_code == "US"
