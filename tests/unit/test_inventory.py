"""The pure stock domain: the planner, move ids, deltas and transaction chunks."""

from __future__ import annotations

import pytest
from storewire.domain.inventory import (
    LedgerEntry,
    LineDemand,
    Location,
    MoveKind,
    OrderStockState,
    Piece,
    StockLevel,
    chunk_moves,
    ledger_sort_key,
    move_id,
    plan_reservation,
    restock_pieces,
    row_deltas,
    sku_version,
    totals,
)

EAST = Location(name="east", priority=1)
WEST = Location(name="west", priority=2)
DEFAULT = Location(name="default")


def row(sku: str, location: str, available: int, on_hand: int | None = None) -> StockLevel:
    return StockLevel(
        sku=sku, location=location, on_hand=available if on_hand is None else on_hand,
        available=available,
    )  # fmt: skip


def demand(line: str, sku: str, qty: int) -> LineDemand:
    return LineDemand(line_id=line, sku=sku, quantity=qty)


def entry(line: str, sku: str, pieces: list[tuple[str, int]], kind: MoveKind) -> LedgerEntry:
    return LedgerEntry(
        order_id="o",
        line_id=line,
        kind=kind,
        sku=sku,
        pieces=tuple(Piece(location=loc, quantity=q) for loc, q in pieces),
    )


def test_reserved_is_derived_from_on_hand_and_available() -> None:
    level = row("A", "default", available=3, on_hand=5)

    assert level.reserved == 2
    assert totals([level, row("A", "east", 4)]) == (9, 2, 7)


def test_the_planner_takes_locations_by_priority_and_splits_a_line() -> None:
    levels = {"A": [row("A", "west", 5), row("A", "east", 2)]}

    (line,) = plan_reservation([demand("1", "A", 4)], levels, [WEST, EAST])

    assert [(p.location, p.quantity) for p in line.pieces] == [("east", 2), ("west", 2)]
    assert line.short == 0


def test_lines_of_one_sku_draw_on_the_same_units() -> None:
    levels = {"A": [row("A", "default", 3)]}

    first, second = plan_reservation([demand("1", "A", 2), demand("2", "A", 2)], levels, [DEFAULT])

    assert (first.reserved, first.short) == (2, 0)
    assert (second.reserved, second.short) == (1, 1)


def test_what_no_location_has_is_short() -> None:
    (line,) = plan_reservation([demand("1", "NOPE", 3)], {}, [DEFAULT])

    assert (line.reserved, line.short, line.pieces) == (0, 3, ())


def test_negative_or_zero_availability_is_never_planned() -> None:
    levels = {"A": [row("A", "east", 0), row("A", "west", -2, on_hand=0)]}

    (line,) = plan_reservation([demand("1", "A", 1)], levels, [EAST, WEST])

    assert line.short == 1


def test_move_ids_are_deterministic_per_order_line_and_kind() -> None:
    assert move_id("o-1", "L1", MoveKind.RESERVE) == "LEDGER#o-1|L1#reserve"
    assert move_id("o-1", "L1", MoveKind.RESTOCK, "r-9") == "LEDGER#o-1|L1#restock#r-9"
    assert ledger_sort_key("L1", MoveKind.COMMIT) == "L1#commit"


def test_row_deltas_follow_the_kind_table() -> None:
    moves = [entry("1", "A", [("east", 2), ("west", 1)], MoveKind.RESERVE)]
    both = [*moves, entry("2", "A", [("east", 1)], MoveKind.RESERVE)]

    assert row_deltas(both, MoveKind.RESERVE) == {("A", "east"): (0, -3), ("A", "west"): (0, -1)}
    assert row_deltas(moves, MoveKind.COMMIT) == {("A", "east"): (-2, 0), ("A", "west"): (-1, 0)}
    assert row_deltas(moves, MoveKind.RELEASE)[("A", "east")] == (0, 2)
    assert row_deltas(moves, MoveKind.RESTOCK)[("A", "east")] == (2, 2)


def test_chunks_stay_within_the_transaction_limit_and_keep_lines_whole() -> None:
    moves = [
        entry(f"L{n}", f"S{n}", [("east", 1), ("west", 1)], MoveKind.RESERVE) for n in range(150)
    ]

    chunks = chunk_moves(moves, per_entry_items=1, fixed_items=1, max_items=100)

    assert sum(len(c) for c in chunks) == 150
    for chunk in chunks:
        rows = {(e.sku, p.location) for e in chunk for p in e.pieces}
        assert 1 + len(chunk) + len(rows) <= 100
    assert [len(c) for c in chunks] == [33, 33, 33, 33, 18]


def test_lines_sharing_a_row_share_its_item_in_a_chunk() -> None:
    moves = [entry(f"L{n}", "A", [("east", 1)], MoveKind.RESERVE) for n in range(150)]

    chunks = chunk_moves(moves, per_entry_items=1, fixed_items=1, max_items=100)

    assert [len(c) for c in chunks] == [98, 52]


def test_a_restock_never_returns_more_than_was_committed() -> None:
    committed = entry("1", "A", [("east", 2), ("west", 3)], MoveKind.COMMIT)

    first = restock_pieces(committed, already=0, quantity=3)
    rest = restock_pieces(committed, already=3, quantity=10)

    assert [(p.location, p.quantity) for p in first] == [("east", 2), ("west", 1)]
    assert [(p.location, p.quantity) for p in rest] == [("west", 2)]


def test_outstanding_reservations_exclude_committed_and_released_lines() -> None:
    state = OrderStockState(
        order_id="o",
        entries=(
            entry("1", "A", [("east", 1)], MoveKind.RESERVE),
            entry("2", "A", [("east", 1)], MoveKind.RESERVE),
            entry("3", "A", [("east", 1)], MoveKind.RESERVE),
            entry("1", "A", [("east", 1)], MoveKind.COMMIT),
            entry("2", "A", [("east", 1)], MoveKind.RELEASE),
        ),
    )

    assert [e.line_id for e in state.outstanding()] == ["3"]


def test_the_sku_version_grows_with_any_row() -> None:
    rows = [row("A", "east", 1), row("A", "west", 1)]
    bumped = [rows[0], rows[1].model_copy(update={"version": 1})]

    assert sku_version(bumped) > sku_version(rows)


@pytest.mark.parametrize("bad", ["a#b", ""])
def test_line_ids_cannot_break_the_ledger_keys(bad: str) -> None:
    with pytest.raises(ValueError):
        LineDemand(line_id=bad, sku="A", quantity=1)
