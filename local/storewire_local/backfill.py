"""`storewire backfill orders --since DATE [--resume] [--shop S] [--stack NAME]`.

For a new installation: the orders reconciliation, run again and again from DATE until it
has caught up. Each run is one invoke of `ReconciliationFunction` (as `storewire reconcile
orders --since` does: locally through the running emulator, `--stack` the deployed one) with
`since` = the backfill's cursor; the function lists from `since` rather than its stored
watermark. A run reports `last_handled_updated_at` (the `updated_at` of the last order it
fully handled) and `complete` (false: it stopped early, out of time or on an error). The
cursor becomes `last_handled_updated_at`, the next run starts from there, and the backfill
stops after the first complete run.

After each run the cursor is saved in `<state dir>/backfill.json`, keyed by target (`local`
or `stack:NAME`) and shop; `--resume` continues from it. The scheduled run's watermark
(`max(last handled - overlap, stored)`) cannot serve: once the schedule has moved it past the
backfill's position, resuming from it would skip what lies between.

Each run lists from the cursor less `TIE_MARGIN`: the storefront lists `updated_at > since`,
and an order sharing the last handled one's `updated_at` that the run did not reach must not
be skipped. The orders re-listed that way are up to date and re-emit nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .reconcile_cli import (
    RegionOption,
    StackOption,
    StateDirOption,
    _fail,
    invoke_local,
    invoke_stack,
    request,
)

STATE_FILE = "backfill.json"
TIE_MARGIN = dt.timedelta(seconds=1)
MAX_RUNS = 10_000
STALLED_RUNS = 3
"""Runs in a row that stop early without moving the cursor: the backfill gives up."""

Invoker = Callable[[dict[str, Any]], Any]


def parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass
class Progress:
    """What a backfill has done, as saved in backfill.json."""

    since: str
    cursor: str | None = None
    handled: int = 0
    republished: int = 0
    pages: int = 0
    runs: int = 0
    complete: bool = False
    updated_at: str | None = None

    def start(self) -> dt.datetime:
        """Where the next run lists from."""
        if self.cursor is None:
            return parse_time(self.since)
        return parse_time(self.cursor) - TIE_MARGIN

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "cursor": self.cursor,
            "handled": self.handled,
            "republished": self.republished,
            "pages": self.pages,
            "runs": self.runs,
            "complete": self.complete,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            since=str(data["since"]),
            cursor=data.get("cursor"),
            handled=int(data.get("handled", 0)),
            republished=int(data.get("republished", 0)),
            pages=int(data.get("pages", 0)),
            runs=int(data.get("runs", 0)),
            complete=bool(data.get("complete", False)),
            updated_at=data.get("updated_at"),
        )


def target_key(stack: str | None) -> str:
    return f"stack:{stack}" if stack else "local"


class BackfillState:
    """`backfill.json`: {target: {shop: Progress}} (shop `""`: the function's default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        return data if isinstance(data, dict) else {}

    def load(self, target: str, shop: str | None) -> Progress | None:
        entry = self._read().get(target, {}).get(shop or "")
        return Progress.from_json(entry) if isinstance(entry, dict) else None

    def save(self, target: str, shop: str | None, progress: Progress) -> None:
        data = self._read()
        data.setdefault(target, {})[shop or ""] = progress.to_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)


class Stalled(Exception):
    """A run stopped early without handling anything past the cursor."""


def backfill(
    invoke: Invoker,
    progress: Progress,
    *,
    shop: str | None,
    save: Callable[[Progress], None],
    on_run: Callable[[Progress, dict[str, Any]], None] = lambda _p, _r: None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    max_runs: int = MAX_RUNS,
) -> Progress:
    """Run orders reconciliations from the cursor until one is complete; save after each."""
    stuck = 0
    for _ in range(max_runs):
        payload = request("orders", progress.start().isoformat(), shop)
        result = invoke(payload)
        if not isinstance(result, dict):
            raise ValueError(f"unexpected answer: {result!r}")
        before = progress.cursor
        last = result.get("last_handled_updated_at")
        if last and (before is None or parse_time(last) > parse_time(before)):
            progress.cursor = parse_time(last).isoformat()
        progress.handled += int(result.get("checked", 0))
        progress.republished += int(result.get("republished", 0))
        progress.pages += int(result.get("pages", 0))
        progress.runs += 1
        progress.complete = bool(result.get("complete", True))
        progress.updated_at = clock().isoformat()
        save(progress)
        on_run(progress, result)
        if progress.complete:
            return progress
        stuck = stuck + 1 if progress.cursor == before else 0
        if stuck >= STALLED_RUNS:
            raise Stalled(
                f"{stuck} runs stopped early at {before or progress.since} without handling an "
                f"order past it (failed: {result.get('failed', 0)}); fix that, then --resume"
            )
    raise Stalled(f"not caught up after {max_runs} runs; run with --resume to go on")


backfill_app = typer.Typer(help="Catch a new installation up with the storefront's history.")


@backfill_app.command("orders")
def backfill_orders_command(
    since: Annotated[
        str | None,
        typer.Option(help="ISO 8601: reconcile the orders updated since then."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the saved cursor (backfill.json).")
    ] = False,
    shop: Annotated[str | None, typer.Option(help="The shop (default: the function's).")] = None,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = Path(".storewire"),
) -> None:
    """Run the orders reconciliation from --since until it has caught up (resumable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar

    state = BackfillState(state_dir / STATE_FILE)
    target = target_key(stack)
    progress: Progress | None = None
    if resume:
        progress = state.load(target, shop)
        if progress is None and since is None:
            raise _fail(f"nothing to resume for {target} in {state.path}; give --since")
    if progress is None:
        if since is None:
            raise _fail("--since is required (or --resume)")
        request("orders", since, shop)  # validates --since
        progress = Progress(since=parse_time(since).isoformat())

    def invoke(payload: dict[str, Any]) -> Any:
        return invoke_stack(payload, stack, region) if stack else invoke_local(payload, state_dir)

    handled_before, republished_before = progress.handled, progress.republished
    console = Console(stderr=True)
    with Bar(
        SpinnerColumn(),
        TextColumn("backfill orders"),
        BarColumn(),
        TextColumn("{task.fields[handled]} orders, {task.fields[pages]} pages"),
        TextColumn("cursor {task.fields[cursor]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(
            "backfill",
            total=None,
            handled=progress.handled,
            pages=progress.pages,
            cursor=progress.cursor or progress.since,
        )

        def on_run(current: Progress, _result: dict[str, Any]) -> None:
            bar.update(
                task,
                handled=current.handled,
                pages=current.pages,
                cursor=current.cursor or current.since,
            )

        try:
            done = backfill(
                invoke,
                progress,
                shop=shop,
                save=lambda p: state.save(target, shop, p),
                on_run=on_run,
            )
        except Stalled as stalled:
            raise _fail(str(stalled), code=1) from None
        bar.update(task, total=1, completed=1)
    typer.echo(
        f"caught up: {done.handled - handled_before} orders checked, "
        f"{done.republished - republished_before} events re-emitted "
        f"({done.handled} and {done.republished} since {done.since}, {done.pages} pages in "
        f"{done.runs} runs); cursor {done.cursor} (saved in {state.path})"
    )
