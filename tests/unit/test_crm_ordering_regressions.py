"""CRM sync regressions: a cancellation sticks whatever the arrival order, and a contact push
whose outcome is in doubt (an attempt timed out: HubSpot may still apply it later) is never
confirmed, so a stale copy landing late is overwritten by the retry.

Reliability suite, seed 3, 300 orders: `shopper43.s3@example.com` ended in HubSpot with
`storewire_last_order_status` 'refunded' and `storewire_order_count` 4 where the history
cancels that order after payment (with a full restocking refund): expected 'cancelled' and 3.
The order's deal was right (cancelled), only the contact was stale. Replaying the order's
canonical events in every order (below) gives the same contribution every time: the domain
is not at fault. The run injects `third_party_timeout` faults: the HubSpot fake holds a
request 11 s and then applies it, after the client's 10 s read timeout and its successful
retry. A contact push carrying 'refunded' (read before the cancel was recorded) was
confirmed, another Lambda pushed 'cancelled', and then the held copy landed: nothing pushed
again. The tests below replay that with a HubSpot that lands a timed-out request late.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from crm_fakes import (
    JANE,
    FakeCrm,
    InMemoryCrmStore,
    crm_deps,
    label_event,
    load_app,
    order_event,
    order_id,
    refund_event,
)
from storewire.crm import CrmDeps, Outcome, sync_batch
from storewire.domain import crm as domain
from storewire.domain.crm import BatchOutcome, CrmInput, CrmPushInDoubt
from storewire.domain.events import (
    CanonicalEvent,
    OrderCancelled,
    OrderData,
    RefundData,
    RefundIssued,
)
from storewire.http import Deadline, RetryPolicy

ORDER = order_id()

# One order cancelled after payment, as the storefront reports it: placed (authorized),
# updated (paid), cancelled (refunded), its restocking refund, and a label bought before
# the cancel was known; plus a late `orders/updated` newer than the cancel that does not
# repeat `cancelled_at` (the cancel must stick anyway).
PLACED = order_event(delivery_id="o-create")
PAID = order_event("orders/updated", delivery_id="o-paid")
CANCELLED = order_event(
    "orders/cancelled",
    delivery_id="o-cancel",
    order=5745289347382,
    total="177.96",
    created_at="2026-11-20T10:15:33-05:00",
    updated_at="2026-11-22T16:20:47-05:00",
)
LATE_UPDATE = order_event(
    "orders/updated", delivery_id="o-late-update", updated_at="2026-11-23T08:00:00-05:00"
)
REFUND = refund_event(delivery_id="o-refund")
LABEL = label_event(ORDER, delivery_id="o-label")


def _apply(aggregate: domain.ContactAggregate, event: CanonicalEvent) -> domain.ContactAggregate:
    data = event.data
    changed: domain.ContactAggregate | None
    if isinstance(data, OrderData):
        assert event.order_id is not None
        cancelled = isinstance(event, OrderCancelled)
        changed = domain.apply_order(aggregate, event.order_id, data, cancelled=cancelled)
    elif isinstance(event, RefundIssued) and isinstance(data, RefundData):
        changed = domain.apply_refund(aggregate, ORDER, data)
    else:
        changed = domain.apply_shipped(aggregate, ORDER)
    return aggregate if changed is None else changed


def _replay(events: Sequence[CanonicalEvent]) -> domain.OrderContribution:
    """Apply `events` in turn; a refund or label before its order waits, as SQS retries it."""
    aggregate = domain.empty(JANE)
    waiting = list(events)
    while waiting:
        retry = []
        for event in waiting:
            try:
                aggregate = _apply(aggregate, event)
            except domain.CrmOrderUnknown:
                retry.append(event)
        assert len(retry) < len(waiting), "nothing applied: an event waits forever"
        waiting = retry
    return aggregate.orders[ORDER]


def _dumped(contribution: domain.OrderContribution) -> dict[str, Any]:
    return contribution.model_dump()


def test_given_a_cancel_after_payment_in_every_arrival_order_then_the_contribution_is_equal() -> (
    None
):
    events = (PLACED, PAID, CANCELLED, LATE_UPDATE, REFUND, LABEL)
    expected = _dumped(_replay(events))
    assert expected["cancelled"] is True

    for ordering in itertools.permutations(events):
        contribution = _replay([*ordering, ordering[0], ordering[-1]])
        assert _dumped(contribution) == expected, [e.event_type for e in ordering]
        assert contribution.status == "cancelled"
        assert contribution.net.amount == 0


@pytest.mark.parametrize("size", [1, 2, 6])
def test_given_a_cancel_after_payment_synced_in_any_order_then_hubspot_says_cancelled(
    size: int,
) -> None:
    events = (PLACED, PAID, CANCELLED, REFUND, LABEL)
    for ordering in itertools.permutations(events):
        crm = FakeCrm()
        deps = crm_deps(crm=crm)
        queue: list[CanonicalEvent] = list(ordering)
        for _ in range(20):
            if not queue:
                break
            chunk, queue = queue[:size], queue[size:]
            results = sync_batch({f"m{i}": e for i, e in enumerate(chunk)}, deps)
            queue += [chunk[int(k[1:])] for k, r in results.items() if r.outcome is Outcome.RETRY]
        assert not queue
        contact, deal = crm.contacts[JANE], crm.deals[ORDER]
        assert contact["storewire_order_count"] == "0"
        assert contact["storewire_last_order_status"] == "cancelled"
        assert (deal["dealstage"], deal["storewire_order_status"]) == ("closedlost", "cancelled")


# --------------------------------------------------------------------------- in doubt


class InDoubtCrm(FakeCrm):
    """A FakeCrm whose next upserts of `doubtful` kinds answer with `in_doubt` set."""

    def __init__(self, doubtful: set[str]) -> None:
        super().__init__()
        self.doubtful = doubtful

    def upsert_contacts(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        return self._maybe_in_doubt("contacts", super().upsert_contacts(inputs))

    def upsert_deals(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        return self._maybe_in_doubt("deals", super().upsert_deals(inputs))

    def _maybe_in_doubt(self, kind: str, outcome: BatchOutcome) -> BatchOutcome:
        if kind in self.doubtful:
            self.doubtful.discard(kind)
            return outcome.model_copy(update={"in_doubt": True})
        return outcome


def test_given_a_contact_push_in_doubt_then_its_records_are_retried_and_not_confirmed() -> None:
    store = InMemoryCrmStore()
    crm = InDoubtCrm({"contacts"})
    deps = crm_deps(store=store, crm=crm)

    first = sync_batch({"m0": PLACED}, deps)
    unconfirmed = store.get_contact(JANE)
    deal_calls = crm.calls_to("upsert_deals")
    second = sync_batch({"m0": PLACED}, deps)

    assert first["m0"].outcome is Outcome.RETRY
    assert isinstance(first["m0"].error, CrmPushInDoubt)
    assert unconfirmed is not None
    assert unconfirmed.synced_version == 0
    assert deal_calls == []  # its records wait for the retry
    assert second["m0"].outcome is Outcome.SYNCED
    contact = store.get_contact(JANE)
    assert contact is not None
    assert contact.synced_version == contact.version


def test_given_a_deal_push_in_doubt_then_the_order_records_are_retried() -> None:
    crm = InDoubtCrm({"deals"})
    deps = crm_deps(crm=crm)

    first = sync_batch({"m0": PLACED}, deps)
    second = sync_batch({"m0": PLACED}, deps)

    assert first["m0"].outcome is Outcome.RETRY
    assert isinstance(first["m0"].error, CrmPushInDoubt)
    assert second["m0"].outcome is Outcome.SYNCED


# --------------------------------------------------------------------------- late landing


class LateLandingHubSpot:
    """HubSpot over `httpx.MockTransport`: contacts, deals, associations. A request named in
    `hold` times out at the client *and is applied later*, when the test calls `land()`,
    as a slow server does after the client gave up (the reliability suite's
    `third_party_timeout`: the HubSpot fake sleeps 11 s, then serves)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, str]]] = {"contacts": {}, "deals": {}}
        self.ids: dict[tuple[str, str], str] = {}
        self.hold: set[str] = set()
        self.held: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        path = request.url.path
        if path.startswith("/crm/v4/associations/"):
            results = [{"from": i["from"], "to": i["to"]} for i in body["inputs"]]
            return httpx.Response(200, json={"status": "COMPLETE", "results": results})
        kind = path.split("/")[4]
        if kind in self.hold:
            self.hold.discard(kind)
            self.held.append((kind, body))
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"status": "COMPLETE", "results": self._apply(kind, body)})

    def _apply(self, kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        results = []
        for item in body["inputs"]:
            key = str(item["id"]).lower()
            new = (kind, key) not in self.ids
            object_id = self.ids.setdefault((kind, key), str(1000 + len(self.ids)))
            self.objects[kind].setdefault(key, {}).update(item["properties"])
            results.append(
                {
                    "id": object_id,
                    "objectWriteTraceId": item["objectWriteTraceId"],
                    "properties": item["properties"],
                    "new": new,
                }
            )
        return results

    def land(self) -> None:
        for kind, body in self.held:
            self._apply(kind, body)
        self.held.clear()


@pytest.fixture
def hubspot() -> LateLandingHubSpot:
    return LateLandingHubSpot()


def _deps(hubspot: LateLandingHubSpot, store: InMemoryCrmStore) -> CrmDeps:
    """The HubSpot gateway exactly as `crm_sync` wires it, on the late-landing transport."""
    app = load_app()
    client = httpx.Client(transport=httpx.MockTransport(hubspot), timeout=10.0)
    gateway = app.hubspot_gateway(
        client,
        "pat-test",
        base_url="https://api.hubapi.test",
        policy=RetryPolicy(max_attempts=3),
        deadline=Deadline(),
        sleep=lambda _seconds: None,
    )
    return crm_deps(store=store, crm=gateway)


def _sync(deps: CrmDeps, *events: CanonicalEvent) -> list[CanonicalEvent]:
    """One Lambda's batch; the events SQS would redeliver."""
    results = sync_batch({f"m{i}": e for i, e in enumerate(events)}, deps)
    return [events[int(k[1:])] for k, r in results.items() if r.outcome is Outcome.RETRY]


def test_given_a_stale_contact_push_that_lands_late_then_the_retry_restores_the_cancel(
    hubspot: LateLandingHubSpot,
) -> None:
    store = InMemoryCrmStore()
    deps = _deps(hubspot, store)
    assert _sync(deps, PLACED, PAID) == []

    # Lambda B: the refund. Its first contact push times out and stays in flight (it says
    # "partially_refunded", 1 order); the client's retry succeeds.
    hubspot.hold.add("contacts")
    redeliver = _sync(deps, REFUND)
    # Lambda A: the cancel, pushed while B's first attempt is still in flight.
    assert _sync(deps, CANCELLED) == []
    # B's timed-out attempt is applied now, after A's push: HubSpot is stale ...
    hubspot.land()
    assert hubspot.objects["contacts"][JANE]["storewire_last_order_status"] == "partially_refunded"

    # ... until SQS redelivers B's records, which it does because B's push was in doubt.
    assert redeliver == [REFUND]
    assert _sync(deps, *redeliver) == []

    contact = hubspot.objects["contacts"][JANE]
    assert contact["storewire_last_order_status"] == "cancelled"
    assert contact["storewire_order_count"] == "0"
    deal = hubspot.objects["deals"][ORDER.lower()]
    assert (deal["dealstage"], deal["storewire_order_status"]) == ("closedlost", "cancelled")


def test_given_a_stale_deal_push_that_lands_late_then_the_retry_restores_the_cancel(
    hubspot: LateLandingHubSpot,
) -> None:
    store = InMemoryCrmStore()
    deps = _deps(hubspot, store)
    assert _sync(deps, PLACED, PAID) == []

    hubspot.hold.add("deals")
    redeliver = _sync(deps, REFUND)
    assert _sync(deps, CANCELLED) == []
    hubspot.land()

    assert redeliver == [REFUND]
    assert _sync(deps, *redeliver) == []
    deal = hubspot.objects["deals"][ORDER.lower()]
    assert (deal["dealstage"], deal["storewire_order_status"]) == ("closedlost", "cancelled")


def test_given_no_attempt_failed_in_transit_then_a_push_is_not_in_doubt(
    hubspot: LateLandingHubSpot,
) -> None:
    deps = _deps(hubspot, InMemoryCrmStore())

    assert _sync(deps, PLACED, REFUND, CANCELLED) == []
    assert _sync(deps, PLACED) == []
