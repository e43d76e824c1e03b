"""`storewire dlq ...` and `storewire replay`: operate the running graph.

Like `storewire order show` (stock_cli.py) they talk to the running emulator's moto
(`.storewire/local.json`: `aws_endpoint_url`, `resources`) or, with `--stack NAME`, to a deployed
stack (DescribeStackResources for the queues, the `EventBusName` / `EventLogGroupName` outputs)
with the usual AWS credentials. The logic lives in `ops.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .stock_cli import DEFAULT_STATE_DIR, RegionOption, StackOption, StateDirOption, _fail

dlq_app = typer.Typer(help="Dead-letter queues: what failed and why; move messages back.")


@dataclass(frozen=True)
class OpsTarget:
    """Clients and physical names of a running graph (the emulator or a stack)."""

    session: Any
    endpoint_url: str | None
    resources: dict[str, str]
    bus_name: str
    stack: str | None = None
    log_group: str | None = None

    def client(self, service: str) -> Any:
        if self.endpoint_url:
            return self.session.client(service, endpoint_url=self.endpoint_url)
        return self.session.client(service)


def connect_ops(stack: str | None, region: str | None, state_dir: Path) -> OpsTarget:
    """The running emulator (local.json) or a deployed stack (its resources and outputs)."""
    import boto3

    if stack:
        session = boto3.session.Session(region_name=region)
        cloudformation = session.client("cloudformation")
        try:
            described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
            listed = cloudformation.describe_stack_resources(StackName=stack)
        except Exception as exc:
            raise _fail(f"cannot describe stack {stack}: {exc}") from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in listed.get("StackResources") or []
            if r.get("PhysicalResourceId")
        }
        return OpsTarget(
            session,
            None,
            resources,
            outputs.get("EventBusName") or resources.get("EventBus", ""),
            stack=stack,
            log_group=outputs.get("EventLogGroupName"),
        )
    from .state import read_state

    state = read_state(state_dir)
    if not state:
        raise _fail(f"no running emulator ({state_dir / 'local.json'}); use --stack or `up`")
    session = boto3.session.Session(
        region_name=state.get("region", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed local credentials
    )
    resources = dict(state.get("resources") or {})
    return OpsTarget(
        session, str(state["aws_endpoint_url"]), resources, resources.get("EventBus", "")
    )


def _progress(label: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
    )


def print_dlqs(listing: list[dict[str, Any]]) -> None:
    """The `dlq list` tables: one line per DLQ, then its messages."""
    from rich.table import Table

    from .ops import console

    out = console(160)
    summary = Table(title="dead-letter queues", show_lines=False)
    for column in ("queue", "source queue", "depth"):
        summary.add_column(column, justify="right" if column == "depth" else "left")
    for dlq in listing:
        summary.add_row(dlq["queue"], dlq["source"] or "-", str(dlq["depth"]))
    out.print(summary)
    for dlq in listing:
        if not dlq["messages"]:
            continue
        table = Table(title=f"{dlq['queue']} ({dlq['depth']})")
        for column in ("message id", "event", "order", "error", "attempts"):
            table.add_column(column, overflow="fold")
        for m in dlq["messages"]:
            table.add_row(
                str(m["message_id"]),
                str(m["detail_type"] or "?"),
                str(m["order_id"] or "-"),
                str(m["error"]),
                str(m["attempts"]),
            )
        out.print(table)


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Every DLQ with its depth and, per message, the event, the error and the attempts."""
    from .ops import list_dlqs, load_queues

    target = connect_ops(stack, region, state_dir)
    sqs = target.client("sqs")
    listing = list_dlqs(sqs, load_queues(sqs, target.resources))
    if as_json:
        typer.echo(json.dumps(listing))
    else:
        print_dlqs(listing)


@dlq_app.command("redrive")
def dlq_redrive(
    queue: Annotated[str, typer.Argument(help="Logical id of the DLQ or of its source queue.")],
    all_messages: Annotated[bool, typer.Option("--all", help="Move every message.")] = False,
    message: Annotated[
        list[str] | None, typer.Option("--message", help="Move this message id (repeatable).")
    ] = None,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Move messages from a DLQ back to its source queue (deleted only once sent)."""
    from .ops import load_queues, queue_depth, redrive

    if all_messages == bool(message):
        raise _fail("say --all or --message ID (one of them)")
    target = connect_ops(stack, region, state_dir)
    sqs = target.client("sqs")
    queues = load_queues(sqs, target.resources)
    try:
        dlq, source = queues.resolve(queue)
    except LookupError as exc:
        raise _fail(str(exc)) from exc
    wanted = set(message) if message else None
    total = len(wanted) if wanted else queue_depth(sqs, queues.urls[dlq])["visible"]
    with _progress(f"{dlq} → {source}") as progress:
        task = progress.add_task("redrive", total=total)
        moved = redrive(
            sqs,
            queues.urls[dlq],
            queues.urls[source],
            message_ids=wanted,
            on_moved=lambda _ident: progress.advance(task),
        )
    typer.echo(f"{len(moved)} messages moved from {dlq} to {source}")
    if wanted and wanted - set(moved):
        missing = ", ".join(sorted(wanted - set(moved)))
        typer.echo(f"not found in {dlq}: {missing}", err=True)
        raise typer.Exit(1)


def replay_command(
    order_id: Annotated[str, typer.Argument(help="The storefront's order id or the canonical id.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the events, put nothing on the bus.")
    ] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Re-emit an order's events (same event ids: consumers redo only lost effects)."""
    from .events_query import local_events, stack_events
    from .ops import order_events, replay

    target = connect_ops(stack, region, state_dir)
    if target.stack:
        # EventBridge StartReplay cannot filter by order: read the event log group instead.
        if not target.log_group:
            raise _fail(f"stack {target.stack} has no EventLogGroupName output")
        recorded = stack_events(target.client("logs"), target.log_group)
    else:
        import httpx

        try:
            recorded = local_events(str(target.endpoint_url))
        except httpx.HTTPError as exc:
            raise _fail(f"emulator not reachable: {exc}") from exc
    found = order_events(recorded, order_id)
    if not found:
        raise _fail(f"no events of order {order_id!r}", 1)
    for event in found:
        detail = event.get("detail") or {}
        stamp = event.get("time", "")
        typer.echo(f"  {stamp}  {event['detail-type']:<22} {detail.get('event_id')}")
    if dry_run:
        typer.echo(f"{len(found)} events (dry run: nothing put)")
        return
    if not target.bus_name:
        raise _fail("no EventBus in the stack")
    with _progress("replaying") as progress:
        task = progress.add_task("replay", total=len(found))
        count = replay(
            target.client("events"),
            found,
            target.bus_name,
            on_put=lambda n: progress.advance(task, n),
        )
    typer.echo(f"{count} events re-emitted on {target.bus_name}")
