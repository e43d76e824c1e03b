"""The stock adjustment service: order events in, ledger moves and stock events out.

=====================================  =========================================================
event                                  effect
=====================================  =========================================================
OrderPlaced                            reserve each line, locations by priority (lines split);
                                       what no location has is short -> StockReserved or
                                       OrderBackordered (with the short lines)
PaymentConfirmed                       commit the open reservations -> StockCommitted
OrderCancelled, PaymentFailed          tombstone the order, release open reservations
                                       -> StockReleased
RefundIssued (lines with restock)      restock committed units -> StockRestocked
=====================================  =========================================================

After each move that changes `available` (all but a commit, which moves units out of
on_hand and reserved together), `StockLevelChanged` per SKU touched carries the new
quantities and a per-SKU version that only grows.

Exactly once, in any order:

* Every move is a ledger entry keyed (order, line, kind[, refund]) written in the same
  transaction as the stock update, conditioned on not existing. A duplicate or redelivered
  event finds its entries and changes nothing; its outcome events are re-published with the
  same ids (they derive from the order), which consumers drop.
* Orders too large for one transaction (100 items) are reserved in chunks of whole lines.
  Before planning, the order's ledger is read, and only lines without an entry are planned:
  after a crash between chunks the retry continues where the first attempt stopped, so the
  effect is once per line. The order is `placed` (its outcome fixed) only when every chunk is
  in.
* A reservation rejected because `available` moved under it (a concurrent order) is
  re-read and re-planned, a bounded number of times.
* A payment confirmed before its reservation is complete raises `PrerequisiteMissing`
  (retryable: SQS redelivers it; the DLQ keeps it if the order never comes). So does a
  refund with restock of a line that is reserved but not yet committed or released: it
  waits for the commit instead of restocking nothing.
* The order record's stock status only moves forward (the graph allows skipping states), so
  a handler whose record update lands after a later move's (a commit between a
  reservation's ledger write and its record update) cannot pull the record back; a release
  never claims `released` for an order the ledger shows committed.
* A cancel (or failed payment) first writes a tombstone on the order's ledger, then releases
  what is reserved. Reservations are conditioned on the tombstone not existing, so a cancel
  that overtakes its OrderPlaced makes the late reservation reserve nothing.
* A commit checks the order's tombstone (one check for the whole order: a cancel writes it
  before releasing anything); a release checks, line by line, that the line was not
  committed. So a line is committed or released, never both.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from storewire.domain.events import (
    CanonicalEvent,
    OrderBackordered,
    OrderBackorderedData,
    OrderData,
    RefundData,
    StockCommitted,
    StockLevelChanged,
    StockLevelData,
    StockLine,
    StockLocationLevel,
    StockMoveData,
    StockOutcome,
    StockPiece,
    StockReleased,
    StockReservationData,
    StockReserved,
    StockRestocked,
    event_id,
    to_bus_entry,
)
from storewire.domain.inventory import (
    MAX_TRANSACTION_ITEMS,
    LedgerEntry,
    LineDemand,
    MoveKind,
    MoveRejected,
    OrderStockState,
    chunk_moves,
    plan_reservation,
    restock_pieces,
    sku_version,
    totals,
)
from storewire.domain.orders import OrderNotFound, OrderStore, StockStatus
from storewire.errors import PrerequisiteMissing, RetryableError
from storewire.ports import EventPublisher, StockStore

logger = logging.getLogger(__name__)

STOCK_SOURCE = "stock"
"""Events of this service travel as `Source: storewire.stock`."""


def stock_event_id(subject: str, event_type: str, index: int = 0) -> str:
    """A deterministic id for a stock event about `subject` (an order id, or sku@version):
    never derived from the delivery that caused it, so a redelivery or a duplicate webhook
    re-emits the same id."""
    return event_id(STOCK_SOURCE, subject, event_type, index)


@dataclass(frozen=True)
class StockDeps:
    """What the stock service works with (wired once per cold start)."""

    store: StockStore
    publisher: EventPublisher
    orders: OrderStore | None = None
    max_transaction_items: int = MAX_TRANSACTION_ITEMS
    attempts: int = 6
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class StockResult:
    """What handling one event did."""

    outcome: str
    order_id: str | None
    events: tuple[CanonicalEvent, ...] = ()
    lines: tuple[StockLine, ...] = ()


def handle_event(event: CanonicalEvent, deps: StockDeps) -> StockResult:
    """Apply one order event to stock (see the module docstring); idempotent."""
    match event.event_type:
        case "OrderPlaced":
            return reserve_order(event, deps)
        case "PaymentConfirmed":
            return commit_order(event, deps)
        case "OrderCancelled" | "PaymentFailed":
            return release_order(event, deps)
        case "RefundIssued":
            return restock_refund(event, deps)
        case _:
            return StockResult(outcome="ignored", order_id=event.order_id)


# --------------------------------------------------------------------------- reserve


def demands(data: OrderData) -> list[LineDemand]:
    """The lines stock is kept for: those with a SKU and a quantity."""
    return [
        LineDemand(line_id=line.line_id, sku=line.sku, quantity=line.quantity)
        for line in data.lines
        if line.sku and line.quantity > 0
    ]


def reserve_order(event: CanonicalEvent, deps: StockDeps) -> StockResult:
    """Reserve an order's lines once, resuming after a crash, never past `available`."""
    order_id = _order_id(event)
    if not isinstance(event.data, OrderData):
        raise ValueError(f"{event.event_type} {event.event_id} carries no inline order data")
    wanted = demands(event.data)
    if deps.orders is not None:
        deps.orders.record_placed(event)

    state = deps.store.order_state(order_id)
    for attempt in range(deps.attempts):
        if state.cancelled or state.placed:
            break
        done = state.of_kind(MoveKind.RESERVE)
        todo = [d for d in wanted if d.line_id not in done]
        levels = deps.store.levels({d.sku for d in todo})
        plan = plan_reservation(todo, levels, deps.store.locations())
        entries = [
            LedgerEntry(
                order_id=order_id,
                line_id=a.line_id,
                kind=MoveKind.RESERVE,
                sku=a.sku,
                pieces=a.pieces,
                requested=a.quantity,
                event_id=event.event_id,
            )
            for a in plan
            if a.pieces
        ]
        try:
            for chunk in chunk_moves(
                entries, per_entry_items=1, fixed_items=1, max_items=deps.max_transaction_items
            ):
                deps.store.apply(order_id, MoveKind.RESERVE, chunk)
        except MoveRejected as rejected:
            logger.info(
                "reservation re-planned",
                extra={"order_id": order_id, "attempt": attempt, "reason": rejected.message},
            )
            _backoff(deps, attempt, rejected)
            state = deps.store.order_state(order_id)
            continue
        short = [a for a in plan if a.short]
        if not deps.store.mark(order_id, placed=True, backordered=short):
            logger.info("order placed by a concurrent attempt", extra={"order_id": order_id})
        state = deps.store.order_state(order_id)
        break
    else:
        raise RetryableError(f"could not reserve {order_id} in {deps.attempts} attempts")

    if state.cancelled:
        if not _shipped(state):
            _stock_transition(deps, event, StockStatus.RELEASED, [], "cancelled before reserving")
        return StockResult(outcome="cancelled", order_id=order_id)

    lines = reservation_lines(wanted, state)
    status = reservation_status(lines)
    events: list[CanonicalEvent] = []
    if status == "reserved":
        events.append(
            StockReserved(
                **_envelope(event, stock_event_id(order_id, "StockReserved")),
                data=StockReservationData(status=status, lines=tuple(lines)),
            )
        )
    else:
        events.append(
            OrderBackordered(
                **_envelope(event, stock_event_id(order_id, "OrderBackordered")),
                data=OrderBackorderedData(
                    status=status,
                    lines=tuple(lines),
                    short_lines=tuple(line for line in lines if line.short),
                ),
            )
        )
    events += level_events(event, {line.sku for line in lines if line.reserved}, deps)
    _stock_transition(deps, event, StockStatus(status), lines, f"stock {status}")
    _publish(deps, events)
    return StockResult(outcome=status, order_id=order_id, events=tuple(events), lines=tuple(lines))


def reservation_lines(wanted: Sequence[LineDemand], state: OrderStockState) -> list[StockLine]:
    """Each wanted line's reservation as the ledger records it."""
    reserved = state.of_kind(MoveKind.RESERVE)
    lines: list[StockLine] = []
    for demand in wanted:
        entry = reserved.get(demand.line_id)
        got = entry.quantity if entry else 0
        lines.append(
            StockLine(
                line_id=demand.line_id,
                sku=demand.sku,
                quantity=demand.quantity,
                reserved=got,
                short=max(demand.quantity - got, 0),
                pieces=_pieces(entry),
            )
        )
    return lines


def reservation_status(lines: Sequence[StockLine]) -> StockOutcome:
    if all(line.short == 0 for line in lines):
        return "reserved"
    if all(line.reserved == 0 for line in lines):
        return "backordered"
    return "partially_reserved"


# --------------------------------------------------------------------------- commit / release


def commit_order(event: CanonicalEvent, deps: StockDeps) -> StockResult:
    """Commit (ship out) every open reservation of a paid order, once."""
    order_id = _order_id(event)
    state = deps.store.order_state(order_id)
    if state.cancelled:
        logger.warning("payment confirmed for a cancelled order", extra={"order_id": order_id})
        return StockResult(outcome="cancelled", order_id=order_id)
    if not state.placed:
        raise PrerequisiteMissing(f"{order_id} has no completed reservation yet; retry later")
    state = _close(event, deps, state, MoveKind.COMMIT)
    committed = list(state.of_kind(MoveKind.COMMIT).values())
    if state.cancelled and not committed:
        logger.warning(
            "payment confirmed for an order cancelled meanwhile", extra={"order_id": order_id}
        )
        return StockResult(outcome="cancelled", order_id=order_id)
    deps.store.mark(order_id, committed=True)
    if not committed:
        return StockResult(outcome="nothing_reserved", order_id=order_id)
    lines = _move_lines(committed)
    # No StockLevelChanged: a commit takes units out of on_hand and reserved together, so
    # `available` (what channels show) is unchanged, and the next move's event carries the
    # new on_hand under a higher version.
    events: list[CanonicalEvent] = [
        StockCommitted(
            **_envelope(event, stock_event_id(order_id, "StockCommitted")),
            data=StockMoveData(lines=tuple(lines)),
        ),
    ]
    _stock_transition(deps, event, StockStatus.COMMITTED, lines, "stock committed")
    _publish(deps, events)
    return StockResult(
        outcome="committed", order_id=order_id, events=tuple(events), lines=tuple(lines)
    )


def release_order(event: CanonicalEvent, deps: StockDeps) -> StockResult:
    """Tombstone the order, then release every reservation not committed, once."""
    order_id = _order_id(event)
    deps.store.mark(order_id, cancelled=True)
    if deps.orders is not None and isinstance(event.data, OrderData):
        deps.orders.record_placed(event)
    state = _close(event, deps, deps.store.order_state(order_id), MoveKind.RELEASE)
    released = list(state.of_kind(MoveKind.RELEASE).values())
    lines = _move_lines(released)
    events: list[CanonicalEvent] = []
    if released:
        events.append(
            StockReleased(
                **_envelope(event, stock_event_id(order_id, "StockReleased")),
                data=StockMoveData(lines=tuple(lines), reason=event.event_type),
            )
        )
        events += level_events(event, {e.sku for e in released}, deps)
    if _shipped(state):
        # A paid order cancelled after its commit: the units are shipped, nothing was released.
        # Its record stays committed (the commit's own update may still be on its way).
        logger.info("cancel of a committed order: nothing to release", extra={"order_id": order_id})
    else:
        _stock_transition(
            deps, event, StockStatus.RELEASED, lines, f"stock released ({event.event_type})"
        )
    _publish(deps, events)
    return StockResult(
        outcome="released", order_id=order_id, events=tuple(events), lines=tuple(lines)
    )


def _close(
    event: CanonicalEvent, deps: StockDeps, state: OrderStockState, kind: MoveKind
) -> OrderStockState:
    """Commit or release the open reservations; the other move of a line wins if first.

    A commit is refused once the order's tombstone exists (a cancel writes it before releasing
    anything): then nothing more is committed, and the state is returned as it is. A release
    is refused, line by line, where the line was committed.
    """
    order_id = state.order_id
    per_entry_items, fixed_items = (1, 1) if kind is MoveKind.COMMIT else (2, 0)
    for attempt in range(deps.attempts):
        entries = [
            LedgerEntry(
                order_id=order_id,
                line_id=r.line_id,
                kind=kind,
                sku=r.sku,
                pieces=r.pieces,
                event_id=event.event_id,
            )
            for r in state.outstanding()
        ]
        try:
            for chunk in chunk_moves(
                entries,
                per_entry_items=per_entry_items,
                fixed_items=fixed_items,
                max_items=deps.max_transaction_items,
            ):
                deps.store.apply(order_id, kind, chunk)
        except MoveRejected as rejected:
            if kind is MoveKind.COMMIT and rejected.has("cancelled"):
                return deps.store.order_state(order_id)
            _backoff(deps, attempt, rejected)
            state = deps.store.order_state(order_id)
            continue
        return deps.store.order_state(order_id) if entries else state
    raise RetryableError(f"could not {kind} {order_id} in {deps.attempts} attempts")


# --------------------------------------------------------------------------- restock


def restock_refund(event: CanonicalEvent, deps: StockDeps) -> StockResult:
    """Put refunded units flagged `restock` back into stock, where they were committed from.

    Only committed (shipped) units are restocked. A refund naming a line that is reserved but
    neither committed nor released yet raises `PrerequisiteMissing` (retryable): it overtook
    the payment's commit (or a cancel's release) and must not answer `nothing_to_restock`
    before that move settles the line. A released or never-reserved line has nothing to
    restock. A refund's restock happens once (its id is in the move's key).
    """
    order_id = _order_id(event)
    if not isinstance(event.data, RefundData):
        raise ValueError(f"RefundIssued {event.event_id} carries no inline refund data")
    refund = event.data
    wanted = [line for line in refund.lines if line.restock and line.quantity > 0]
    if not wanted:
        return StockResult(outcome="nothing_to_restock", order_id=order_id)
    state = deps.store.order_state(order_id)
    if not state.placed and not state.cancelled:
        raise PrerequisiteMissing(f"{order_id} has no reservation yet; retry the refund later")
    # A line still reserved (neither committed nor released) is on its way out: the payment's
    # commit ships it, or the cancel's release frees it. Restocking now would find no commit
    # and lose the restock, so the whole refund waits (SQS redelivers it) until every line it
    # names is settled. Lines never reserved (short) or released have nothing to restock.
    open_lines = sorted(
        {e.line_id for e in state.outstanding()} & {line.line_id for line in wanted}
    )
    if open_lines:
        raise PrerequisiteMissing(
            f"{order_id} line(s) {', '.join(open_lines)} reserved but not committed yet; "
            f"retry refund {refund.refund_id} after the commit"
        )
    for attempt in range(deps.attempts):
        committed = state.of_kind(MoveKind.COMMIT)
        done = {
            e.line_id
            for e in state.entries
            if e.kind is MoveKind.RESTOCK and e.ref == refund.refund_id
        }
        entries: list[LedgerEntry] = []
        for line in wanted:
            commit = committed.get(line.line_id)
            if commit is None or line.line_id in done:
                continue
            pieces = restock_pieces(commit, state.restocked(line.line_id), line.quantity)
            if pieces:
                entries.append(
                    LedgerEntry(
                        order_id=order_id,
                        line_id=line.line_id,
                        kind=MoveKind.RESTOCK,
                        sku=commit.sku,
                        pieces=pieces,
                        ref=refund.refund_id,
                        requested=line.quantity,
                        event_id=event.event_id,
                    )
                )
        try:
            for chunk in chunk_moves(entries, max_items=deps.max_transaction_items):
                deps.store.apply(order_id, MoveKind.RESTOCK, chunk)
        except MoveRejected as rejected:
            _backoff(deps, attempt, rejected)
            state = deps.store.order_state(order_id)
            continue
        break
    else:
        raise RetryableError(f"could not restock {order_id} in {deps.attempts} attempts")
    state = deps.store.order_state(order_id)
    restocked = [
        e for e in state.entries if e.kind is MoveKind.RESTOCK and e.ref == refund.refund_id
    ]
    if not restocked:
        return StockResult(outcome="nothing_to_restock", order_id=order_id)
    lines = _move_lines(restocked)
    events: list[CanonicalEvent] = [
        StockRestocked(
            **_envelope(event, stock_event_id(f"{order_id}|{refund.refund_id}", "StockRestocked")),
            data=StockMoveData(lines=tuple(lines), refund_id=refund.refund_id),
        ),
        *level_events(event, {e.sku for e in restocked}, deps),
    ]
    _stock_transition(
        deps, event, StockStatus.RESTOCKED, lines, f"refund {refund.refund_id} restocked"
    )
    _publish(deps, events)
    return StockResult(
        outcome="restocked", order_id=order_id, events=tuple(events), lines=tuple(lines)
    )


# --------------------------------------------------------------------------- helpers


def level_events(
    cause: CanonicalEvent, skus: Iterable[str], deps: StockDeps
) -> list[CanonicalEvent]:
    """One `StockLevelChanged` per SKU with its quantities now (id from SKU and version)."""
    events: list[CanonicalEvent] = []
    for sku, rows in sorted(deps.store.levels(skus).items()):
        if not rows:
            continue
        on_hand, reserved, available = totals(rows)
        version = sku_version(rows)
        events.append(
            StockLevelChanged(
                **_envelope(cause, stock_event_id(f"{sku}@{version}", "StockLevelChanged")),
                data=StockLevelData(
                    sku=sku,
                    on_hand=on_hand,
                    reserved=reserved,
                    available=available,
                    version=version,
                    locations=tuple(
                        StockLocationLevel(
                            location=r.location,
                            on_hand=r.on_hand,
                            reserved=r.reserved,
                            available=r.available,
                        )
                        for r in rows
                    ),
                ),
            )
        )
    return events


def _shipped(state: OrderStockState) -> bool:
    """Whether the ledger shows a commit: then the record must never say `released`."""
    return bool(state.of_kind(MoveKind.COMMIT))


def _order_id(event: CanonicalEvent) -> str:
    if not event.order_id:
        raise ValueError(f"{event.event_type} {event.event_id} names no order")
    return event.order_id


def _envelope(cause: CanonicalEvent, new_id: str) -> dict[str, Any]:
    return {
        "event_id": new_id,
        "occurred_at": datetime.now(UTC),
        "source": STOCK_SOURCE,
        "shop": cause.shop,
        "channel": cause.channel,
        "order_id": cause.order_id,
        "external_order_id": cause.external_order_id,
        "customer_id": cause.customer_id,
        "correlation_id": cause.correlation_id,
        "delivery_id": cause.event_id,
    }


def _pieces(entry: LedgerEntry | None) -> tuple[StockPiece, ...]:
    if entry is None:
        return ()
    return tuple(StockPiece(location=p.location, quantity=p.quantity) for p in entry.pieces)


def _move_lines(entries: Iterable[LedgerEntry]) -> list[StockLine]:
    return [
        StockLine(
            line_id=e.line_id,
            sku=e.sku,
            quantity=e.requested or e.quantity,
            reserved=e.quantity,
            pieces=_pieces(e),
        )
        for e in sorted(entries, key=lambda e: e.line_id)
    ]


def _backoff(deps: StockDeps, attempt: int, rejected: MoveRejected) -> None:
    if rejected.has("conflict"):
        deps.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not crypto


def _publish(deps: StockDeps, events: Sequence[CanonicalEvent]) -> None:
    if events:
        deps.publisher.publish([to_bus_entry(e) for e in events])


def _stock_transition(
    deps: StockDeps,
    event: CanonicalEvent,
    status: StockStatus,
    lines: Sequence[StockLine],
    summary: str,
) -> None:
    """Record the stock outcome on the order record (at most once per event id)."""
    if deps.orders is None or event.order_id is None:
        return
    try:
        deps.orders.transition(
            event.order_id,
            "stock",
            status,
            event_id=event.event_id,
            at=deps.clock(),
            details={"lines": [line.model_dump(mode="json") for line in lines]},
            event_type=event.event_type,
            summary=summary,
        )
    except OrderNotFound:
        # PaymentFailed or RefundIssued for an order never placed here: the stock ledger
        # holds the truth; the record gets the stock state when its OrderPlaced comes.
        logger.info("no order record to update", extra={"order_id": event.order_id})
