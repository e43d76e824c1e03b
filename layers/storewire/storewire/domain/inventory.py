"""Stock per (SKU, location), the ledger of moves, and the reservation planner. Pure.

Each stock row stores exactly two quantities, `on_hand` and `available`; `reserved` is
derived (`on_hand - available`) and never stored, so no write can make the three disagree.
Two stored numbers (not `on_hand` and `reserved`) because DynamoDB conditions cannot do
arithmetic: the oversell guard must be one condition on a stored attribute,
`available >= :q`, evaluated by the same write that takes the units.

What each move does to a row (`q` the quantity):

===========  ====================================  ==================================
kind         stock row                             condition
===========  ====================================  ==================================
reserve      available -= q                        available >= q, order not cancelled
commit       on_hand -= q (shipped out)            order not cancelled (no release yet)
release      available += q                        the line's commit does not exist
restock      on_hand += q, available += q          -
set / count  on_hand = N, available += N - old     row version unchanged, available >= 0
===========  ====================================  ==================================

Every move writes a ledger entry with a deterministic key in the same DynamoDB
transaction as the stock update, conditioned on the entry not existing: the entry is what
makes the move happen once. An order's entries live under one partition,
``LEDGER#{order_id}``, one per (line, kind) -- ``{line_id}#{kind}`` (restocks add the refund
id) -- and carry the line's pieces (location, quantity), so a line split across locations is
still one idempotent move whatever locations a retry would pick.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storewire.errors import PermanentError, RetryableError

DEFAULT_LOCATION = "default"
MAX_TRANSACTION_ITEMS = 100
"""DynamoDB TransactWriteItems holds at most 100 items."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MoveKind(StrEnum):
    RESERVE = "reserve"
    COMMIT = "commit"
    RELEASE = "release"
    RESTOCK = "restock"
    SET = "set"


class Location(_Frozen):
    """A stock location; lower `priority` is reserved from first (ties: by name)."""

    name: str = Field(min_length=1, pattern=r"^[^#]+$")
    priority: int = 100


class StockLevel(_Frozen):
    """One (SKU, location) row. `reserved` is derived, never stored."""

    sku: str
    location: str
    on_hand: int
    available: int
    version: int = Field(default=0, description="+1 on every write of the row")

    @property
    def reserved(self) -> int:
        return self.on_hand - self.available


class Piece(_Frozen):
    """Part of a line's quantity at one location."""

    location: str
    quantity: int = Field(gt=0)


class LineDemand(_Frozen):
    """What an order line asks of stock."""

    line_id: str = Field(pattern=r"^[^#]+$")
    sku: str
    quantity: int = Field(ge=0)


class LineAllocation(_Frozen):
    """The planner's answer for one line: where its units come from, and what is short."""

    line_id: str
    sku: str
    quantity: int
    pieces: tuple[Piece, ...] = ()

    @property
    def reserved(self) -> int:
        return sum(p.quantity for p in self.pieces)

    @property
    def short(self) -> int:
        return self.quantity - self.reserved


class LedgerEntry(_Frozen):
    """One applied move of an order line (or a manual move), as the ledger stores it."""

    order_id: str
    line_id: str
    kind: MoveKind
    sku: str
    pieces: tuple[Piece, ...]
    ref: str = Field(default="", description="Distinguishes repeatable moves (refund id)")
    requested: int = Field(default=0, description="Reserve: the line's ordered quantity")
    event_id: str = ""

    @property
    def quantity(self) -> int:
        return sum(p.quantity for p in self.pieces)

    @property
    def sort_key(self) -> str:
        return ledger_sort_key(self.line_id, self.kind, self.ref)


class OrderStockState(_Frozen):
    """What the ledger knows about one order: its moves and its flags."""

    order_id: str
    entries: tuple[LedgerEntry, ...] = ()
    placed: bool = Field(default=False, description="The reservation ran to completion")
    cancelled: bool = Field(default=False, description="Tombstone: reserve nothing from now on")
    committed: bool = False
    backordered: tuple[LineAllocation, ...] = Field(
        default=(), description="Lines that were (partly) short when the order was placed"
    )

    def of_kind(self, kind: MoveKind) -> dict[str, LedgerEntry]:
        """Entries of one kind by line id (restocks: the last one per line)."""
        return {e.line_id: e for e in self.entries if e.kind is kind}

    def outstanding(self) -> list[LedgerEntry]:
        """Reservations neither committed nor released yet."""
        closed = self.of_kind(MoveKind.COMMIT).keys() | self.of_kind(MoveKind.RELEASE).keys()
        return [e for e in self.entries if e.kind is MoveKind.RESERVE and e.line_id not in closed]

    def restocked(self, line_id: str) -> int:
        return sum(
            e.quantity for e in self.entries if e.kind is MoveKind.RESTOCK and e.line_id == line_id
        )


# --------------------------------------------------------------------------- errors


class RejectReason(_Frozen):
    """Why one item of a move transaction failed its condition."""

    kind: Literal["applied", "insufficient", "closed", "cancelled", "missing", "stale", "conflict"]
    """applied: the ledger entry exists (the move happened); insufficient: available < q;
    closed: the opposite move (commit vs release) happened; cancelled: the order's tombstone;
    missing: the stock row does not exist; stale: the row changed since it was read;
    conflict: another transaction touched the items (retry)."""
    subject: str


class MoveRejected(RetryableError):
    """A move transaction was cancelled; nothing of it was applied. `reasons` say why."""

    def __init__(self, reasons: Sequence[RejectReason]) -> None:
        self.reasons = tuple(reasons)
        super().__init__(
            "stock move rejected: " + ", ".join(f"{r.kind} {r.subject}" for r in self.reasons)
        )

    def has(self, kind: str) -> bool:
        return any(r.kind == kind for r in self.reasons)


class StockBelowReserved(PermanentError):
    """A count would put on_hand below the units reserved at that location."""


# --------------------------------------------------------------------------- keys and plans


def ledger_partition(order_id: str) -> str:
    return f"LEDGER#{order_id}"


def ledger_sort_key(line_id: str, kind: MoveKind | str, ref: str = "") -> str:
    return f"{line_id}#{kind}" + (f"#{ref}" if ref else "")


def manual_partition(sku: str, location: str) -> str:
    return f"LEDGER#manual#{sku}#{location}"


def move_id(order_id: str, line_id: str, kind: MoveKind | str, ref: str = "") -> str:
    """The deterministic id of a move: the same (order, line, kind[, ref]) is one move."""
    return f"{ledger_partition(order_id)}|{ledger_sort_key(line_id, kind, ref)}"


def ordered_locations(locations: Iterable[Location]) -> list[Location]:
    """Locations in reservation order: priority, then name."""
    return sorted(locations, key=lambda loc: (loc.priority, loc.name))


def plan_reservation(
    lines: Sequence[LineDemand],
    levels: Mapping[str, Sequence[StockLevel]],
    locations: Sequence[Location],
) -> list[LineAllocation]:
    """Where each line's units come from: locations in priority order, splitting a line
    across locations when one cannot cover it; whatever no location has is short.

    Lines of the same SKU draw on the same availability in order. Rows at locations that
    are not configured are used after the configured ones (by name).
    """
    rank = {loc.name: i for i, loc in enumerate(ordered_locations(locations))}
    remaining: dict[tuple[str, str], int] = {}
    order_by_sku: dict[str, list[str]] = defaultdict(list)
    for sku, rows in levels.items():
        for row in sorted(rows, key=lambda r: (rank.get(r.location, len(rank)), r.location)):
            remaining[(sku, row.location)] = max(row.available, 0)
            order_by_sku[sku].append(row.location)
    plan: list[LineAllocation] = []
    for line in lines:
        need = line.quantity
        pieces: list[Piece] = []
        for location in order_by_sku.get(line.sku, []):
            if need == 0:
                break
            take = min(need, remaining[(line.sku, location)])
            if take > 0:
                pieces.append(Piece(location=location, quantity=take))
                remaining[(line.sku, location)] -= take
                need -= take
        plan.append(
            LineAllocation(
                line_id=line.line_id, sku=line.sku, quantity=line.quantity, pieces=tuple(pieces)
            )
        )
    return plan


def rows_touched(entries: Iterable[LedgerEntry]) -> set[tuple[str, str]]:
    return {(e.sku, p.location) for e in entries for p in e.pieces}


def chunk_moves(
    entries: Sequence[LedgerEntry],
    *,
    per_entry_items: int = 1,
    fixed_items: int = 0,
    max_items: int = MAX_TRANSACTION_ITEMS,
) -> list[list[LedgerEntry]]:
    """Split line moves into transactions of at most `max_items` items, keeping each line's
    pieces together.

    A transaction holds, per line, `per_entry_items` ledger items (the entry, plus e.g. a
    condition check), one update per distinct stock row (two lines on one row share the
    update), and `fixed_items` once (e.g. the order's cancelled check).
    """
    chunks: list[list[LedgerEntry]] = []
    current: list[LedgerEntry] = []
    rows: set[tuple[str, str]] = set()
    for entry in entries:
        new_rows = rows_touched([entry]) - rows
        need = fixed_items + per_entry_items * (len(current) + 1) + len(rows) + len(new_rows)
        if current and need > max_items:
            chunks.append(current)
            current, rows = [], set()
            new_rows = rows_touched([entry])
        if fixed_items + per_entry_items + len(new_rows) > max_items:
            raise ValueError(f"line {entry.line_id} alone needs more than {max_items} items")
        current.append(entry)
        rows |= new_rows
    if current:
        chunks.append(current)
    return chunks


def row_deltas(
    entries: Iterable[LedgerEntry], kind: MoveKind
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per stock row, the (on_hand, available) change a set of moves of `kind` makes."""
    deltas: dict[tuple[str, str], tuple[int, int]] = {}
    for entry in entries:
        for piece in entry.pieces:
            on_hand, available = deltas.get((entry.sku, piece.location), (0, 0))
            d_on_hand, d_available = _DELTAS[kind]
            deltas[(entry.sku, piece.location)] = (
                on_hand + d_on_hand * piece.quantity,
                available + d_available * piece.quantity,
            )
    return deltas


_DELTAS: Mapping[MoveKind, tuple[int, int]] = {
    MoveKind.RESERVE: (0, -1),
    MoveKind.COMMIT: (-1, 0),
    MoveKind.RELEASE: (0, 1),
    MoveKind.RESTOCK: (1, 1),
}


def restock_pieces(committed: LedgerEntry, already: int, quantity: int) -> tuple[Piece, ...]:
    """The pieces a restock of `quantity` units of a committed line returns, location by
    location in the order they were committed, never more than was committed in total."""
    left_to_skip = already
    left = quantity
    pieces: list[Piece] = []
    for piece in committed.pieces:
        skip = min(left_to_skip, piece.quantity)
        left_to_skip -= skip
        take = min(left, piece.quantity - skip)
        if take > 0:
            pieces.append(Piece(location=piece.location, quantity=take))
            left -= take
    return tuple(pieces)


def totals(levels: Sequence[StockLevel]) -> tuple[int, int, int]:
    """(on_hand, reserved, available) summed over locations."""
    on_hand = sum(r.on_hand for r in levels)
    available = sum(r.available for r in levels)
    return on_hand, on_hand - available, available


def sku_version(levels: Sequence[StockLevel]) -> int:
    """A per-SKU version that grows with every write of any of its rows."""
    return sum(r.version for r in levels)
