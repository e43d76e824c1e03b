"""The contact aggregate: per-order contributions, exact money, monotonic snapshots. Pure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_fakes import JANE, customer_event, order_event, order_id, refund_event
from storewire.domain import crm
from storewire.domain.events import CustomerData, OrderData, RefundData


def order_data(**kwargs: object) -> OrderData:
    event = order_event(**kwargs)  # type: ignore[arg-type]
    assert isinstance(event.data, OrderData)
    return event.data


def refund_data(**kwargs: object) -> RefundData:
    event = refund_event(**kwargs)  # type: ignore[arg-type]
    assert isinstance(event.data, RefundData)
    return event.data


def placed(aggregate: crm.ContactAggregate, **kwargs: object) -> crm.ContactAggregate:
    data = order_data(**kwargs)
    changed = crm.apply_order(aggregate, order_id(data.external_order_id), data)
    assert changed is not None
    return changed


def test_given_an_order_when_its_snapshot_arrives_twice_then_the_second_changes_nothing() -> None:
    aggregate = placed(crm.empty(JANE))

    again = crm.apply_order(aggregate, order_id(), order_data())

    assert again is None
    assert crm.contact_properties(aggregate, "USD")["storewire_order_count"] == "1"


def test_given_a_newer_snapshot_when_an_older_one_arrives_late_then_the_newer_one_stays() -> None:
    newer = placed(crm.empty(JANE), total="200.00", updated_at="2026-11-21T10:00:00-05:00")

    late = crm.apply_order(
        newer, order_id(), order_data(total="100.00", updated_at="2026-11-20T10:00:00-05:00")
    )

    assert late is None
    assert crm.total_spent(newer, "USD") == Decimal("200.00")


def test_given_a_cancelled_order_when_an_older_snapshot_arrives_then_it_stays_cancelled() -> None:
    aggregate = placed(crm.empty(JANE))
    cancelled = crm.apply_order(aggregate, order_id(), order_data(), cancelled=True)
    assert cancelled is not None

    late = crm.apply_order(
        cancelled, order_id(), order_data(updated_at="2026-11-20T10:15:33-05:00")
    )

    assert late is None
    props = crm.contact_properties(cancelled, "USD")
    assert props["storewire_order_count"] == "0"
    assert props["storewire_total_spent"] == "0.00"
    assert props["storewire_last_order_status"] == "cancelled"


def test_given_a_refund_when_it_is_applied_twice_then_it_is_counted_once() -> None:
    aggregate = placed(crm.empty(JANE))
    refund = refund_data()
    refunded = crm.apply_refund(aggregate, order_id(), refund)
    assert refunded is not None

    assert crm.apply_refund(refunded, order_id(), refund) is None
    assert crm.total_spent(refunded, "USD") == Decimal("177.96") - Decimal("51.71")
    assert crm.contact_properties(refunded, "USD")["storewire_last_order_status"] == (
        "partially_refunded"
    )


def test_given_no_order_yet_when_a_refund_arrives_then_it_is_retried_not_misapplied() -> None:
    with pytest.raises(crm.CrmOrderUnknown):
        crm.apply_refund(crm.empty(JANE), order_id(), refund_data())


def test_given_orders_in_two_currencies_then_each_total_is_exact_and_none_is_converted() -> None:
    aggregate = placed(crm.empty(JANE), order=1, total="10.10", currency="USD")
    aggregate = placed(aggregate, order=2, total="0.20", currency="USD")
    aggregate = placed(aggregate, order=3, total="19.90", currency="EUR")

    props = crm.contact_properties(aggregate, "USD")

    assert props["storewire_total_spent"] == "10.30"
    assert props["storewire_total_spent_currency"] == "USD"
    assert props["storewire_total_spent_by_currency"] == "EUR 19.90; USD 10.30"
    assert props["storewire_order_count"] == "3"


def test_given_two_orders_then_the_last_order_is_the_latest_placed_whatever_the_arrival() -> None:
    late_first = placed(
        crm.empty(JANE), order=2, created_at="2026-11-24T09:00:00-05:00", total="5.00"
    )
    both = placed(late_first, order=1, created_at="2026-11-20T09:00:00-05:00", total="7.00")

    props = crm.contact_properties(both, "USD")

    assert props["storewire_last_order_date"] == "2026-11-24"
    assert props["storewire_last_order_number"] == "#2"


def test_given_a_profile_when_an_older_one_arrives_then_the_newer_profile_stays() -> None:
    newer = customer_event(updated_at="2026-11-21T10:00:00-05:00", first_name="Janet")
    older = customer_event(updated_at="2026-11-20T10:00:00-05:00", first_name="Jane")
    assert isinstance(newer.data, CustomerData)
    assert isinstance(older.data, CustomerData)
    aggregate = crm.apply_customer(crm.empty(JANE), newer.data, newer.customer_id)
    assert aggregate is not None

    assert crm.apply_customer(aggregate, older.data, older.customer_id) is None
    assert crm.contact_properties(aggregate, "USD")["firstname"] == "Janet"


def test_given_a_contact_known_only_from_orders_then_no_profile_property_is_blanked() -> None:
    props = crm.contact_properties(placed(crm.empty(JANE)), "USD")

    assert "firstname" not in props
    assert "phone" not in props
    assert props["email"] == JANE


def test_given_a_deal_then_it_is_keyed_by_the_unique_order_id_with_an_exact_amount() -> None:
    aggregate = placed(crm.empty(JANE))

    props = crm.deal_properties(aggregate.orders[order_id()])

    assert props[crm.DEAL_ID_PROPERTY] == order_id()
    assert props["amount"] == "177.96"
    assert props["deal_currency_code"] == "USD"
    assert props["dealstage"] == "closedwon"


@pytest.mark.parametrize(
    ("raw", "plausible"),
    [("Jane.Doe@Example.com ", True), ("not-an-email", False), ("a b@c.d", False)],
)
def test_emails_are_normalised_and_only_impossible_ones_are_refused_locally(
    raw: str, plausible: bool
) -> None:
    email = crm.normalise_email(raw)

    assert email == raw.strip().lower()
    assert crm.is_plausible_email(email) is plausible
    assert crm.contact_key(raw) == crm.contact_key(email)
