"""Property: whatever the interleaving of reports, redeliveries, bus failures and crashes,
one order gets exactly one PaymentConfirmed id, and it does get it once the queue drains."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fakes_orders import InMemoryOrderStore
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_fakes import RecordingPublisher
from payment_fakes import (
    FakeGateway,
    deps,
    intent,
    order_placed,
    shopify_event,
    stripe_payment,
    stripe_report,
)
from storewire.domain.events import BusEntry, CanonicalEvent
from storewire.domain.orders import OrderNotFound
from storewire.errors import PublishFailed
from storewire.payments import handle_payment_event

FAULTS = ("none", "bus_down", "crash_before_mark", "crash_before_publish")


class Crash(Exception):
    """The Lambda died mid-record: SQS redelivers the message later."""


class FaultyPublisher(RecordingPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "none"

    def publish(self, entries: Sequence[BusEntry]) -> None:
        if self.mode == "bus_down":
            raise PublishFailed("the bus refused")
        if self.mode == "crash_before_publish":
            raise Crash("died before the publish")
        super().publish(entries)


class FaultyOrders(InMemoryOrderStore):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "none"

    def append_timeline(self, order_id: str, **kwargs: Any) -> bool:  # type: ignore[override]
        if self.mode == "crash_before_mark" and str(kwargs.get("event_type", "")).startswith(
            "Payment"
        ):
            raise Crash("died after the publish, before the mark")
        return super().append_timeline(order_id, **kwargs)


def messages() -> list[CanonicalEvent]:
    return [
        order_placed(),
        stripe_report("payment_intent.succeeded", intent(), evt="evt_one"),
        stripe_report("payment_intent.succeeded", intent(), evt="evt_two"),
        shopify_event("orders/paid", "wh-paid-1"),
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from(FAULTS)), max_size=30)
)
def test_given_any_interleaving_when_the_queue_drains_then_one_payment_confirmed_id(
    steps: list[tuple[int, str]],
) -> None:
    publisher, orders = FaultyPublisher(), FaultyOrders()
    d = deps(
        FakeGateway("stripe", stripe_payment()),
        FakeGateway("shopify", stripe_payment()),
        orders=orders,
        publisher=publisher,
    )
    queue = messages()
    pending = set(range(len(queue)))

    def deliver(index: int, fault: str) -> None:
        publisher.mode = orders.mode = fault
        try:
            handle_payment_event(queue[index], d)
        except (Crash, PublishFailed, OrderNotFound):
            return  # not acknowledged: SQS delivers it again
        finally:
            publisher.mode = orders.mode = "none"
        pending.discard(index)

    for index, fault in steps:
        deliver(index, fault)  # acknowledged messages may come again (at-least-once)
        ids = {json.loads(e["Detail"])["event_id"] for e in publisher.published}
        assert len(ids) <= 1

    for _ in range(3):  # the queue drains: every unacknowledged message, without faults
        for index in sorted(pending):
            deliver(index, "none")

    assert not pending
    types = [e["DetailType"] for e in publisher.published]
    assert set(types) == {"PaymentConfirmed"}
    assert len({json.loads(e["Detail"])["event_id"] for e in publisher.published}) == 1
    record = orders.get(queue[0].order_id or "")
    assert record is not None
    assert record.payment.status == "confirmed"
