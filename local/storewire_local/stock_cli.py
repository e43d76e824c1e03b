"""`storewire stock ...` and `storewire order ...`: operate stock and read order records.

They talk to the running emulator's moto (`.storewire/local.json`: `aws_endpoint_url` and
`resources`, logical id -> physical name) or, with `--stack NAME`, to a deployed stack (its
`InventoryTableName` / `OrdersTableName` outputs) with the usual AWS credentials. Every
change goes through the same adapter the Lambda uses, so a count is a ledger move too.
"""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

stock_app = typer.Typer(help="Stock per SKU and location: counts, imports, levels, locations.")
order_app = typer.Typer(help="Order records: each order's state per concern and its timeline.")

DEFAULT_STATE_DIR = Path(".storewire")

StackOption = Annotated[
    str | None, typer.Option("--stack", help="A deployed stack instead of the local emulator.")
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (with --stack).")]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="Where the emulator's local.json is.")
]
DefaultLocationOption = Annotated[
    str,
    typer.Option(
        "--default-location",
        envvar="DEFAULT_LOCATION",
        help="The location that exists unless configured otherwise.",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@dataclass(frozen=True)
class Target:
    """Where the tables are: a DynamoDB client and the physical table names."""

    client: Any
    inventory_table: str
    orders_table: str


def connect(stack: str | None, region: str | None, state_dir: Path) -> Target:
    """The running emulator's tables (local.json), or a deployed stack's (its outputs)."""
    import boto3

    if stack:
        session = boto3.session.Session(region_name=region)
        try:
            described = session.client("cloudformation").describe_stacks(StackName=stack)
        except Exception as exc:
            raise _fail(f"cannot describe stack {stack}: {exc}") from exc
        outputs = {
            o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs") or []
        }
        missing = {"InventoryTableName", "OrdersTableName"} - outputs.keys()
        if missing:
            raise _fail(f"stack {stack} has no output {', '.join(sorted(missing))}")
        return Target(
            session.client("dynamodb"), outputs["InventoryTableName"], outputs["OrdersTableName"]
        )
    from .state import read_state

    state = read_state(state_dir)
    if not state:
        raise _fail(f"no running emulator ({state_dir / 'local.json'}); use --stack or `up`")
    resources = state.get("resources") or {}
    if "InventoryTable" not in resources or "OrdersTable" not in resources:
        raise _fail("the running emulator's template has no InventoryTable / OrdersTable")
    client = boto3.client(
        "dynamodb",
        endpoint_url=state["aws_endpoint_url"],
        region_name=state.get("region", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed local credentials
    )
    return Target(client, resources["InventoryTable"], resources["OrdersTable"])


def _store(target: Target, default_location: str) -> Any:
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore

    return DynamoDBStockStore(
        target.client, target.inventory_table, default_location=default_location
    )


def stock_view(store: Any, sku: str) -> dict[str, Any]:
    """`{"sku", "on_hand", "reserved", "available", "locations": [...]}` for one SKU."""
    from storewire.domain.inventory import ordered_locations, totals

    rows = {r.location: r for r in store.levels([sku]).get(sku, [])}
    locations = []
    for location in ordered_locations(store.locations()):
        row = rows.get(location.name)
        if row is None:
            continue
        locations.append(
            {
                "location": row.location,
                "priority": location.priority,
                "on_hand": row.on_hand,
                "reserved": row.reserved,
                "available": row.available,
            }
        )
    on_hand, reserved, available = totals(list(rows.values()))
    return {
        "sku": sku,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": available,
        "locations": locations,
    }


def _print_stock(view: dict[str, Any]) -> None:
    typer.echo(
        f"{view['sku']}: on_hand {view['on_hand']}, reserved {view['reserved']}, "
        f"available {view['available']}"
    )
    for loc in view["locations"]:
        typer.echo(
            f"  {loc['location']:<16} on_hand {loc['on_hand']:>6}  reserved {loc['reserved']:>6}"
            f"  available {loc['available']:>6}"
        )


# ---------------------------------------------------------------- storewire stock ...


@stock_app.command("set")
def stock_set(
    sku: Annotated[str, typer.Argument(help="The SKU.")],
    on_hand: Annotated[int, typer.Option("--on-hand", help="Units physically there.", min=0)],
    location: Annotated[str | None, typer.Option(help="Location (default: the default).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the SKU's levels as JSON.")
    ] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    default_location: DefaultLocationOption = "default",
) -> None:
    """Count: set on_hand at a location; available moves by the difference (reserved stays)."""
    from storewire.errors import StorewireError

    store = _store(connect(stack, region, state_dir), default_location)
    try:
        store.set_on_hand(sku, location or default_location, on_hand, ref=f"cli-{uuid.uuid4()}")
    except StorewireError as exc:
        raise _fail(exc.message, 1) from exc
    view = stock_view(store, sku)
    if as_json:
        typer.echo(json.dumps(view))
    else:
        _print_stock(view)


@stock_app.command("show")
def stock_show(
    sku: Annotated[str, typer.Argument(help="The SKU.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    default_location: DefaultLocationOption = "default",
) -> None:
    """On hand, reserved and available for a SKU, in total and per location."""
    view = stock_view(_store(connect(stack, region, state_dir), default_location), sku)
    if as_json:
        typer.echo(json.dumps(view))
    else:
        _print_stock(view)


@stock_app.command("location")
def stock_location(
    name: Annotated[str, typer.Argument(help="Location name.")],
    priority: Annotated[int, typer.Option(help="Lower is reserved from first.")] = 100,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    default_location: DefaultLocationOption = "default",
) -> None:
    """Add a location, or change its priority."""
    from pydantic import ValidationError
    from storewire.domain.inventory import Location, ordered_locations

    try:
        location = Location(name=name, priority=priority)
    except ValidationError as exc:
        raise _fail(f"invalid location {name!r}: names cannot contain '#'") from exc
    store = _store(connect(stack, region, state_dir), default_location)
    store.put_location(location)
    for loc in ordered_locations(store.locations()):
        typer.echo(f"{loc.priority:>5}  {loc.name}")


@dataclass(frozen=True)
class ImportRow:
    line: int
    sku: str
    location: str
    on_hand: int


def parse_import(path: Path, default_location: str) -> tuple[list[ImportRow], list[str]]:
    """The good rows of a `sku,on_hand[,location]` CSV, and a message per bad row."""
    good: list[ImportRow] = []
    bad: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = {f.strip().lower() for f in reader.fieldnames or []}
        if not {"sku", "on_hand"} <= fields:
            raise _fail(f"{path}: the header must name sku and on_hand (and may name location)")
        for raw in reader:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            line = reader.line_num
            sku, location = row.get("sku", ""), row.get("location") or default_location
            problem = None
            if not sku or "#" in sku:
                problem = f"invalid sku {sku!r}"
            elif "#" in location:
                problem = f"invalid location {location!r}"
            else:
                try:
                    on_hand = int(row.get("on_hand", ""))
                except ValueError:
                    on_hand = -1
                if on_hand < 0:
                    problem = f"on_hand must be a whole number >= 0, not {row.get('on_hand')!r}"
            if problem:
                bad.append(f"line {line}: {problem}")
                continue
            good.append(ImportRow(line=line, sku=sku, location=location, on_hand=on_hand))
    return good, bad


@stock_app.command("import")
def stock_import(
    file: Annotated[Path, typer.Argument(help="CSV with columns sku,on_hand[,location].")],
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    default_location: DefaultLocationOption = "default",
) -> None:
    """Count many SKUs from a CSV: good rows are applied, bad rows reported by line number."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from storewire.errors import StorewireError

    if not file.is_file():
        raise _fail(f"cannot read {file}")
    good, bad = parse_import(file, default_location)
    store = _store(connect(stack, region, state_dir), default_location)
    run = uuid.uuid4().hex[:12]
    applied = 0
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("import", total=len(good))
        for row in good:
            try:
                store.set_on_hand(
                    row.sku, row.location, row.on_hand, ref=f"import-{run}-{row.line}"
                )
                applied += 1
            except StorewireError as exc:
                bad.append(f"line {row.line}: {exc.message}")
            progress.advance(task)
    for message in sorted(bad, key=lambda m: int(m.split(":")[0].removeprefix("line "))):
        typer.echo(message, err=True)
    typer.echo(f"{applied} rows applied, {len(bad)} rejected")
    if bad:
        raise typer.Exit(1)


# ---------------------------------------------------------------- storewire order ...


def _concern_extra(state: dict[str, Any]) -> str:
    """The few details worth a glance: the label's carrier and tracking, the CRM contact."""
    if state.get("tracking_number"):
        label = " ".join(str(state[k]) for k in ("carrier", "service") if state.get(k))
        tracking = state.get("tracking_status")
        return f" ({label} {state['tracking_number']}" + (f", {tracking})" if tracking else ")")
    if state.get("contact_id"):
        return f" (contact {state['contact_id']})"
    return ""


@order_app.command("show")
def order_show(
    order_id: Annotated[str, typer.Argument(help="The storefront's order id or the canonical id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """An order's state per concern (payment, stock, shipment, crm) and its timeline."""
    from storewire.adapters.dynamodb_orders import DynamoDBOrderStore

    target = connect(stack, region, state_dir)
    record = DynamoDBOrderStore(target.client, target.orders_table).find(order_id)
    if record is None:
        raise _fail(f"no order {order_id!r} (or more than one with that storefront id)", 1)
    view = record.view()
    if as_json:
        typer.echo(json.dumps(view))
        return
    typer.echo(f"{view['order_id']} ({view['order_number']}): {view['status']}")
    for concern in ("payment", "stock", "shipment", "crm"):
        typer.echo(f"  {concern:<9} {view[concern]['status']}{_concern_extra(view[concern])}")
    for line in view["stock"].get("lines", []):
        typer.echo(
            f"    {line['line_id']} {line['sku']}: {line.get('reserved', 0)}/{line['quantity']}"
            + (f", short {line['short']}" if line.get("short") else "")
        )
    from rich.table import Table

    from .ops import console, timeline_rows

    table = Table(title="timeline", title_justify="left")
    for column in ("at", "concern", "event", "summary"):
        table.add_column(column, overflow="fold")
    for row in timeline_rows(view):
        table.add_row(*row)
    console().print(table)
