"""`sync_batch`: coalescing, one call per batch, exact totals under redelivery and reordering,
rate limits left to SQS, one invalid contact failing alone. Hand-written fakes, no sockets."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from crm_fakes import (
    JANE,
    FakeCrm,
    InMemoryCrmStore,
    crm_deps,
    customer_event,
    label_event,
    order_event,
    order_id,
    refund_event,
)
from fakes_orders import InMemoryOrderStore
from storewire.crm import CrmDeps, Outcome, sync_batch
from storewire.domain.crm import ContactChanged, CrmOrderUnknown, InvalidContact
from storewire.domain.events import CanonicalEvent
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError

BOB = "bob@example.com"
ANN = "ann@example.com"


def batch(*events: CanonicalEvent) -> dict[str, CanonicalEvent]:
    return {f"msg-{i}": event for i, event in enumerate(events)}


def run(deps: CrmDeps, *events: CanonicalEvent) -> dict[str, Outcome]:
    return {key: result.outcome for key, result in sync_batch(batch(*events), deps).items()}


def rate_limited() -> RetryableUpstreamError:
    return RetryableUpstreamError(
        "hubspot POST /crm/v3/objects/contacts/batch/upsert: 429 You have reached your limit",
        service="hubspot",
        status=429,
        code="RATE_LIMIT",
        attempts=4,
        retry_after=1.0,
    )


def test_given_n_events_of_one_customer_when_synced_then_one_input_in_one_call() -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)

    outcomes = run(
        deps,
        customer_event(),
        order_event(delivery_id="create-1"),
        order_event("orders/updated", delivery_id="update-1"),
        order_event(delivery_id="create-2", order=1002, total="20.00"),
    )

    assert set(outcomes.values()) == {Outcome.SYNCED}
    (inputs,) = crm.calls_to("upsert_contacts")
    assert [i.key for i in inputs] == [JANE]
    assert inputs[0].properties["storewire_order_count"] == "2"
    assert inputs[0].properties["storewire_total_spent"] == "197.96"
    assert inputs[0].properties["firstname"] == "Jane"


def test_given_a_batch_of_three_customers_then_exactly_one_contact_upsert_call() -> None:
    crm = FakeCrm()

    run(
        crm_deps(crm=crm),
        order_event(delivery_id="a", order=1, email=ANN),
        order_event(delivery_id="b", order=2, email=BOB),
        customer_event(delivery_id="c"),
        order_event(delivery_id="d", order=3, email=BOB),
    )

    assert len(crm.calls_to("upsert_contacts")) == 1
    assert sorted(i.key for i in crm.calls_to("upsert_contacts")[0]) == [ANN, BOB, JANE]
    assert len(crm.calls_to("upsert_deals")) == 1
    assert len(crm.calls_to("associate_deals")) == 1
    assert sorted(crm.deals) == sorted(order_id(n) for n in (1, 2, 3))


def final_properties(events: Sequence[CanonicalEvent], batch_size: int) -> dict[str, str]:
    """Deliver `events` in batches, redelivering retried records, until all are done."""
    crm = FakeCrm()
    deps = crm_deps(crm=crm)
    queue = list(events)
    for _ in range(10):
        if not queue:
            break
        retry: list[CanonicalEvent] = []
        for start in range(0, len(queue), batch_size):
            chunk = queue[start : start + batch_size]
            results = sync_batch(batch(*chunk), deps)
            retry += [chunk[int(k[4:])] for k, r in results.items() if r.outcome is Outcome.RETRY]
        queue = retry
    assert not queue
    return crm.contacts[JANE]


HISTORY = (
    customer_event(),
    order_event(delivery_id="create-1"),
    order_event("orders/updated", delivery_id="update-1"),
    order_event(delivery_id="create-2", order=1002, total="20.00"),
    refund_event(),
    order_event("orders/cancelled", delivery_id="cancel-3", order=1003, total="5.00"),
)


def test_given_the_same_history_in_any_order_with_duplicates_then_the_totals_are_exact() -> None:
    expected = final_properties(HISTORY, batch_size=10)
    assert expected["storewire_order_count"] == "2"
    assert expected["storewire_total_spent"] == "146.25"  # 177.96 - 51.71 + 20.00

    for ordering in itertools.islice(itertools.permutations(HISTORY), 0, 720, 37):
        duplicated = [*ordering, ordering[0], ordering[3], ordering[4]]
        for size in (1, 3, 10):
            assert final_properties(duplicated, batch_size=size) == expected


def test_given_a_429_that_outlasts_the_retries_then_the_batch_is_retried_and_one_contact() -> None:
    crm = FakeCrm()
    crm.fail_next = [rate_limited()]
    deps = crm_deps(crm=crm)
    events = (customer_event(), order_event())

    first = sync_batch(batch(*events), deps)
    second = run(deps, *events)

    assert {r.outcome for r in first.values()} == {Outcome.RETRY}
    assert all(isinstance(r.error, RetryableUpstreamError) for r in first.values())
    assert set(second.values()) == {Outcome.SYNCED}
    assert list(crm.contact_ids) == [JANE]
    assert crm.contacts[JANE]["storewire_total_spent"] == "177.96"
    assert crm.contacts[JANE]["storewire_order_count"] == "1"


def test_given_an_email_the_crm_refuses_then_only_that_record_fails_permanently() -> None:
    crm = FakeCrm()
    crm.refuse = {"jane@example"}

    results = sync_batch(
        batch(
            order_event(delivery_id="ok-1", order=1, email=ANN),
            order_event(delivery_id="bad", order=2, email="jane@example"),
            customer_event(delivery_id="ok-2"),
        ),
        crm_deps(crm=crm),
    )

    assert results["msg-0"].outcome is Outcome.SYNCED
    assert results["msg-2"].outcome is Outcome.SYNCED
    assert results["msg-1"].outcome is Outcome.PERMANENT
    assert isinstance(results["msg-1"].error, InvalidContact)
    assert "INVALID_EMAIL" in results["msg-1"].reason
    assert "jane@example" not in results["msg-1"].reason  # personal data stays out
    assert order_id(2) not in crm.deals
    assert sorted(crm.contact_ids) == [ANN, JANE]


def test_given_an_impossible_email_then_it_fails_alone_before_any_call() -> None:
    crm = FakeCrm()

    outcomes = run(
        crm_deps(crm=crm), order_event(email="not-an-email"), customer_event(delivery_id="ok")
    )

    assert outcomes == {"msg-0": Outcome.PERMANENT, "msg-1": Outcome.SYNCED}
    assert [i.key for i in crm.calls_to("upsert_contacts")[0]] == [JANE]


def test_given_the_crm_refuses_the_whole_call_then_every_record_is_dead_lettered() -> None:
    crm = FakeCrm()
    crm.fail_next = [
        PermanentUpstreamError("401", service="hubspot", status=401, code="INVALID_AUTHENTICATION")
    ]

    outcomes = run(crm_deps(crm=crm), customer_event(), order_event())

    assert set(outcomes.values()) == {Outcome.PERMANENT}


def test_given_a_refund_before_its_order_then_it_is_retried_and_applied_once_later() -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)

    early = sync_batch(batch(refund_event()), deps)
    run(deps, order_event())
    later = run(deps, refund_event(), refund_event())

    assert early["msg-0"].outcome is Outcome.RETRY
    assert isinstance(early["msg-0"].error, CrmOrderUnknown)
    assert set(later.values()) == {Outcome.SYNCED}
    assert crm.contacts[JANE]["storewire_total_spent"] == "126.25"
    assert crm.deals[order_id()]["storewire_refunded"] == "51.71"


def test_given_a_label_then_the_last_order_status_is_shipped() -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)
    run(deps, order_event())

    outcomes = run(deps, label_event(order_id()))

    assert outcomes == {"msg-0": Outcome.SYNCED}
    assert crm.contacts[JANE]["storewire_last_order_status"] == "shipped"


def test_given_an_order_without_email_then_it_is_ignored() -> None:
    crm = FakeCrm()

    outcomes = run(crm_deps(crm=crm), order_event(email="", customer=None))

    assert outcomes == {"msg-0": Outcome.IGNORED}
    assert crm.calls == []


def test_given_a_synced_order_then_its_record_gains_crm_status_and_contact_id() -> None:
    orders = InMemoryOrderStore()
    crm = FakeCrm()
    deps = crm_deps(crm=crm, orders=orders)

    run(deps, order_event())
    run(deps, order_event())  # redelivered: the transition is applied once

    record = orders.get(order_id())
    assert record is not None
    assert record.crm.status == "synced"
    assert record.crm.details["contact_id"] == crm.contact_ids[JANE]
    assert record.crm.details["deal_id"] == crm.deal_ids[order_id()]
    assert sum(1 for e in record.timeline if e.event_type == "CrmSynced") == 1


def test_given_a_refused_order_contact_then_the_order_record_says_crm_failed() -> None:
    orders = InMemoryOrderStore()
    crm = FakeCrm()
    crm.refuse = {"jane@example"}

    run(crm_deps(crm=crm, orders=orders), order_event(email="jane@example"))

    record = orders.get(order_id())
    assert record is not None
    assert record.crm.status == "failed"
    assert record.crm.details["error_type"] == "InvalidContact"


def test_given_another_lambda_changes_the_contact_mid_push_then_the_record_is_retried() -> None:
    store = InMemoryCrmStore()
    crm = FakeCrm()
    deps = crm_deps(store=store, crm=crm)

    def racing_writer(email: str) -> None:
        store.update_contact(email, lambda a: a.model_copy(update={"contact_id": "x"}))

    store.before_mark = racing_writer
    first = sync_batch(batch(order_event()), deps)
    second = run(deps, order_event())

    assert first["msg-0"].outcome is Outcome.RETRY
    assert isinstance(first["msg-0"].error, ContactChanged)
    assert second == {"msg-0": Outcome.SYNCED}


def test_given_the_deal_call_fails_then_only_order_records_are_retried() -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)
    run(deps, customer_event(delivery_id="warm"))  # the contact exists already
    crm.fail_next = []

    def failing_deals(inputs: object) -> object:
        raise rate_limited()

    crm.upsert_deals = failing_deals  # type: ignore[method-assign,assignment]

    outcomes = run(deps, customer_event(delivery_id="again"), order_event())

    assert outcomes == {"msg-0": Outcome.SYNCED, "msg-1": Outcome.RETRY}


@pytest.mark.parametrize("size", [1, 10])
def test_given_a_redelivered_batch_then_properties_sent_are_identical(size: int) -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)
    events = (customer_event(), order_event(), refund_event())

    run(deps, *events[:2])
    run(deps, *events[2:])
    before = dict(crm.contacts[JANE])
    run(deps, *events)

    assert crm.contacts[JANE] == before
    assert len(crm.contact_ids) == 1


def test_given_an_order_whose_email_changes_then_it_stays_on_its_first_contact() -> None:
    crm = FakeCrm()
    deps = crm_deps(crm=crm)
    run(deps, order_event(email=ANN))

    run(deps, order_event("orders/updated", email=BOB))

    assert list(crm.contact_ids) == [ANN]
    assert crm.contacts[ANN]["storewire_order_count"] == "1"
