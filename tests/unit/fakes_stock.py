"""An in-memory `StockStore` that enforces the DynamoDB adapter's conditions (no Mock()).

`apply` checks every condition first and changes nothing unless all hold, as one
TransactWriteItems does: the tombstone for reservations, each ledger entry absent, the
opposite move absent for commit / release, `available >= q` per row for reservations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from storewire.domain.inventory import (
    DEFAULT_LOCATION,
    LedgerEntry,
    LineAllocation,
    Location,
    MoveKind,
    MoveRejected,
    OrderStockState,
    RejectReason,
    StockBelowReserved,
    StockLevel,
    ledger_sort_key,
    row_deltas,
)


class InMemoryStockStore:
    def __init__(self, default_location: str = DEFAULT_LOCATION) -> None:
        self.rows: dict[tuple[str, str], StockLevel] = {}
        self.ledger: dict[str, dict[str, LedgerEntry]] = {}
        self.flags: dict[str, dict[str, object]] = {}
        self.location_items: dict[str, Location] = {}
        self.default = default_location
        self.transactions = 0
        self.sets: set[str] = set()

    def locations(self) -> list[Location]:
        found = dict(self.location_items)
        found.setdefault(self.default, Location(name=self.default))
        return list(found.values())

    def put_location(self, location: Location) -> None:
        self.location_items[location.name] = location

    def levels(self, skus: Iterable[str]) -> dict[str, list[StockLevel]]:
        names = {loc.name for loc in self.locations()}
        result: dict[str, list[StockLevel]] = {sku: [] for sku in skus}
        for (sku, location), row in sorted(self.rows.items()):
            if sku in result and location in names:
                result[sku].append(row)
        return result

    def order_state(self, order_id: str) -> OrderStockState:
        flags = self.flags.get(order_id, {})
        backordered = flags.get("backordered", ())
        assert isinstance(backordered, tuple)
        return OrderStockState(
            order_id=order_id,
            entries=tuple(self.ledger.get(order_id, {}).values()),
            placed=bool(flags.get("placed")),
            cancelled=bool(flags.get("cancelled")),
            committed=bool(flags.get("committed")),
            backordered=backordered,
        )

    def apply(self, order_id: str, kind: MoveKind, entries: Sequence[LedgerEntry]) -> None:
        if not entries:
            return
        self.transactions += 1
        ledger = self.ledger.setdefault(order_id, {})
        reasons: list[RejectReason] = []
        if kind in (MoveKind.RESERVE, MoveKind.COMMIT) and self.flags.get(order_id, {}).get(
            "cancelled"
        ):
            reasons.append(RejectReason(kind="cancelled", subject=order_id))
        for entry in entries:
            if entry.sort_key in ledger:
                reasons.append(RejectReason(kind="applied", subject=entry.line_id))
            if (
                kind is MoveKind.RELEASE
                and ledger_sort_key(entry.line_id, MoveKind.COMMIT) in ledger
            ):
                reasons.append(RejectReason(kind="closed", subject=entry.line_id))
        deltas = row_deltas(entries, kind)
        for (sku, location), (_, d_available) in sorted(deltas.items()):
            row = self.rows.get((sku, location))
            if row is None or (kind is MoveKind.RESERVE and row.available < -d_available):
                reasons.append(
                    RejectReason(
                        kind="insufficient" if kind is MoveKind.RESERVE else "missing",
                        subject=f"{sku}@{location}",
                    )
                )
        if reasons:
            raise MoveRejected(reasons)
        for entry in entries:
            ledger[entry.sort_key] = entry
        for key, (d_on_hand, d_available) in deltas.items():
            row = self.rows[key]
            self.rows[key] = row.model_copy(
                update={
                    "on_hand": row.on_hand + d_on_hand,
                    "available": row.available + d_available,
                    "version": row.version + 1,
                }
            )

    def mark(
        self,
        order_id: str,
        *,
        placed: bool = False,
        cancelled: bool = False,
        committed: bool = False,
        backordered: Sequence[LineAllocation] = (),
    ) -> bool:
        flags = self.flags.setdefault(order_id, {})
        if placed and flags.get("placed"):
            return False
        if placed:
            flags["placed"] = True
            flags["backordered"] = tuple(backordered)
        if cancelled:
            flags["cancelled"] = True
        if committed:
            flags["committed"] = True
        return True

    def set_on_hand(self, sku: str, location: str, on_hand: int, *, ref: str) -> StockLevel:
        row = self.rows.get((sku, location))
        if f"{sku}#{location}#{ref}" in self.sets:
            assert row is not None
            return row
        old_on_hand = row.on_hand if row else 0
        available = (row.available if row else 0) + on_hand - old_on_hand
        if available < 0 or on_hand < 0:
            raise StockBelowReserved(f"{sku}@{location}: {on_hand} is below what is reserved")
        new = StockLevel(
            sku=sku,
            location=location,
            on_hand=on_hand,
            available=available,
            version=(row.version if row else 0) + 1,
        )
        self.rows[(sku, location)] = new
        self.sets.add(f"{sku}#{location}#{ref}")
        self.transactions += 1
        return new
