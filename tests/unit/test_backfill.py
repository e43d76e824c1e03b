"""storewire_local.backfill: the cursor, its saving after each run and --resume, on a fake
invoker standing for ReconciliationFunction (no emulator, no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import storewire_local.backfill as backfill_module
from storewire_local.backfill import (
    TIE_MARGIN,
    BackfillState,
    Progress,
    Stalled,
    backfill,
)
from storewire_local.cli import app
from typer.testing import CliRunner

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeFunction:
    """Orders reconciliation over a list of `updated_at`s: at most `per_run` orders a run,
    listing `updated_at > since` as the storefront does; `fail_at`: the run stops there."""

    def __init__(self, times: list[datetime], per_run: int, page_size: int = 2) -> None:
        self.orders = sorted(enumerate(times), key=lambda o: o[1])
        self.per_run = per_run
        self.page_size = page_size
        self.payloads: list[dict[str, Any]] = []
        self.seen: set[int] = set()
        self.handled: list[datetime] = []
        self.fail_at: datetime | None = None

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.payloads.append(payload)
        assert payload["kind"] == "orders"
        since = datetime.fromisoformat(payload["since"])
        listed = [(n, t) for n, t in self.orders if t > since]
        done: list[datetime] = []
        new: list[datetime] = []
        complete = True
        for n, at in listed:
            if len(done) == self.per_run or at == self.fail_at:
                complete = False
                break
            done.append(at)
            if n not in self.seen:
                self.seen.add(n)
                new.append(at)
        self.handled.extend(new)
        return {
            "kind": "orders",
            "checked": len(done),
            "corrected": len(new),
            "republished": 2 * len(new),
            "pages": max(1, -(-len(done) // self.page_size)),
            "complete": complete,
            "failed": 0 if complete or len(done) == self.per_run else 1,
            "since": since.isoformat(),
            "watermark": None,
            "last_handled_updated_at": done[-1].isoformat().replace("+00:00", "Z")
            if done
            else None,
        }


def run(fake: FakeFunction, progress: Progress, saved: list[dict[str, Any]]) -> Progress:
    return backfill(fake, progress, shop=None, save=lambda p: saved.append(p.to_json()))


def test_runs_until_a_complete_run_saving_the_cursor_after_each() -> None:
    times = [T0 + timedelta(minutes=i) for i in range(7)]
    fake = FakeFunction(times, per_run=3)
    saved: list[dict[str, Any]] = []
    done = run(fake, Progress(since=(T0 - timedelta(days=1)).isoformat()), saved)
    assert done.complete
    assert sorted(fake.handled) == times  # every order, once
    assert done.runs == 3
    assert [s["cursor"] for s in saved] == [
        times[2].isoformat(),
        times[4].isoformat(),  # each run re-lists the last handled order (the tie margin)
        times[6].isoformat(),
    ]
    assert [s["complete"] for s in saved] == [False, False, True]
    # The first run lists from --since; the next ones from the cursor, less the tie margin.
    assert fake.payloads[0]["since"] == (T0 - timedelta(days=1)).isoformat()
    assert fake.payloads[1]["since"] == (times[2] - TIE_MARGIN).isoformat()
    assert done.handled == 3 + 3 + 3  # orders checked, the re-listed ones included
    assert done.republished == 2 * len(times)


def test_an_order_sharing_the_last_handled_updated_at_is_not_skipped() -> None:
    minute = T0 + timedelta(minutes=1)
    times = [T0, T0 + timedelta(seconds=30), minute, minute, T0 + timedelta(minutes=2)]
    fake = FakeFunction(times, per_run=3)  # the first run stops between the two at `minute`
    done = run(fake, Progress(since=(T0 - timedelta(hours=1)).isoformat()), [])
    assert done.complete
    assert sorted(fake.handled) == times  # both orders of minute 1, each once


def test_resume_continues_from_the_saved_cursor(tmp_path: Path) -> None:
    times = [T0 + timedelta(minutes=i) for i in range(6)]
    fake = FakeFunction(times, per_run=2)
    fake.fail_at = times[3]
    state = BackfillState(tmp_path / "backfill.json")
    with pytest.raises(Stalled):
        backfill(
            fake,
            Progress(since=(T0 - timedelta(hours=1)).isoformat()),
            shop="a.myshopify.com",
            save=lambda p: state.save("local", "a.myshopify.com", p),
        )
    stored = state.load("local", "a.myshopify.com")
    assert stored is not None
    assert stored.cursor == times[2].isoformat()
    assert not stored.complete

    fake.fail_at = None
    resumed_at = len(fake.payloads)
    done = backfill(
        fake,
        stored,
        shop="a.myshopify.com",
        save=lambda p: state.save("local", "a.myshopify.com", p),
    )
    assert done.complete
    assert sorted(fake.handled) == times
    assert fake.payloads[resumed_at]["since"] == (times[2] - TIE_MARGIN).isoformat()
    assert fake.payloads[-1]["shop"] == "a.myshopify.com"
    again = state.load("local", "a.myshopify.com")
    assert again is not None
    assert again.complete
    assert again.cursor == times[5].isoformat()


def test_the_state_file_is_keyed_by_target_and_shop(tmp_path: Path) -> None:
    state = BackfillState(tmp_path / "backfill.json")
    state.save("local", None, Progress(since="2026-01-01T00:00:00+00:00", cursor="a"))
    state.save("stack:prod", None, Progress(since="2026-01-01T00:00:00+00:00", cursor="b"))
    state.save("stack:prod", "x.myshopify.com", Progress(since="2026-01-02T00:00:00+00:00"))
    data = json.loads((tmp_path / "backfill.json").read_text())
    assert set(data) == {"local", "stack:prod"}
    assert data["stack:prod"][""]["cursor"] == "b"
    assert state.load("local", None).cursor == "a"  # type: ignore[union-attr]
    assert state.load("stack:prod", "x.myshopify.com").cursor is None  # type: ignore[union-attr]
    assert state.load("stack:dev", None) is None


def test_the_command_saves_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    times = [T0 + timedelta(minutes=i) for i in range(5)]
    fake = FakeFunction(times, per_run=2)
    fake.fail_at = times[2]
    monkeypatch.setattr(backfill_module, "invoke_local", lambda payload, _dir: fake(payload))
    runner = CliRunner()
    since = ["--since", "2025-12-31T00:00:00Z", "--state-dir", str(tmp_path)]
    first = runner.invoke(app, ["backfill", "orders", *since])
    assert first.exit_code == 1, first.output
    saved = json.loads((tmp_path / "backfill.json").read_text())["local"][""]
    assert saved["cursor"] == times[1].isoformat()
    assert saved["since"] == "2025-12-31T00:00:00+00:00"

    fake.fail_at = None
    resumed_at = len(fake.payloads)
    resumed = runner.invoke(app, ["backfill", "orders", "--resume", "--state-dir", str(tmp_path)])
    assert resumed.exit_code == 0, resumed.output
    assert "caught up" in resumed.output
    assert sorted(fake.handled) == times
    assert fake.payloads[resumed_at]["since"] == (times[1] - TIE_MARGIN).isoformat()


def test_the_command_needs_since_or_something_to_resume(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["backfill", "orders", "--state-dir", str(tmp_path)])
    assert plain.exit_code == 2
    resume = runner.invoke(app, ["backfill", "orders", "--resume", "--state-dir", str(tmp_path)])
    assert resume.exit_code == 2
    bad = runner.invoke(
        app, ["backfill", "orders", "--since", "yesterday", "--state-dir", str(tmp_path)]
    )
    assert bad.exit_code == 2
