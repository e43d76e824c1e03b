"""`storewire channel ...`: map a SKU to its sales-channel listings and read what was pushed.

Talks to the running emulator's moto (`.storewire/local.json`: the `ChannelListingsTable`
resource) or, with `--stack NAME`, to a deployed stack (its `ChannelListingsTableName`
output), through the adapter channel sync itself uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

channel_app = typer.Typer(
    help="Sales-channel listings: which channel item and location a SKU's stock is pushed to."
)

DEFAULT_STATE_DIR = Path(".storewire")

StackOption = Annotated[
    str | None, typer.Option("--stack", help="A deployed stack instead of the local emulator.")
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (with --stack).")]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="Where the emulator's local.json is.")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@dataclass(frozen=True)
class Target:
    client: Any
    table: str


def connect(stack: str | None, region: str | None, state_dir: Path) -> Target:
    """The running emulator's listing table (local.json), or a deployed stack's (its output)."""
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
        if "ChannelListingsTableName" not in outputs:
            raise _fail(f"stack {stack} has no output ChannelListingsTableName")
        return Target(session.client("dynamodb"), outputs["ChannelListingsTableName"])
    from .state import read_state

    state = read_state(state_dir)
    if not state:
        raise _fail(f"no running emulator ({state_dir / 'local.json'}); use --stack or `up`")
    resources = state.get("resources") or {}
    if "ChannelListingsTable" not in resources:
        raise _fail("the running emulator's template has no ChannelListingsTable")
    client = boto3.client(
        "dynamodb",
        endpoint_url=state["aws_endpoint_url"],
        region_name=state.get("region", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed local credentials
    )
    return Target(client, resources["ChannelListingsTable"])


def _store(target: Target) -> Any:
    from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore

    return DynamoDBChannelListingStore(target.client, target.table)


def _print(listings: list[Any]) -> None:
    for listing in listings:
        pushed = (
            f"pushed {listing.pushed_quantity} (version {listing.pushed_version})"
            if listing.pushed_version is not None
            else "not pushed yet"
        )
        typer.echo(
            f"{listing.sku} @ {listing.location} -> {listing.channel}"
            f"{' ' + listing.shop if listing.shop else ''}: {listing.inventory_item_id} at "
            f"{listing.location_id}; {pushed}"
        )


@channel_app.command("map")
def channel_map(
    sku: Annotated[str, typer.Argument(help="The SKU.")],
    inventory_item_id: Annotated[
        str,
        typer.Option(
            "--inventory-item-id", help="The channel's inventory item, e.g. gid://shopify/..."
        ),
    ],
    location_id: Annotated[
        str, typer.Option("--location-id", help="The channel's location, e.g. gid://shopify/...")
    ],
    location: Annotated[
        str,
        typer.Option(
            "--location", help="Our location whose stock is pushed ('*': the SKU's total)."
        ),
    ] = "default",
    channel: Annotated[str, typer.Option(help="The sales channel.")] = "shopify",
    shop: Annotated[
        str,
        typer.Option(
            envvar="STOREWIRE_SHOP",
            help="The channel's shop (x.myshopify.com); empty: the shop named by the stock event.",
        ),
    ] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the SKU's listings as JSON.")
    ] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """List a SKU's stock at one of our locations on a channel item and location."""
    from pydantic import ValidationError
    from storewire.domain.channels import ChannelListing

    try:
        listing = ChannelListing(
            sku=sku,
            location=location,
            channel=channel,
            shop=shop,
            inventory_item_id=inventory_item_id,
            location_id=location_id,
            mapped_at=datetime.now(UTC),
        )
    except ValidationError as exc:
        problems = ", ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise _fail(f"invalid listing ({problems}); names cannot contain '#'") from exc
    store = _store(connect(stack, region, state_dir))
    store.put_mapping(listing)
    listings = store.listings(sku)
    if as_json:
        typer.echo(json.dumps({"sku": sku, "listings": [item.view() for item in listings]}))
    else:
        _print(listings)


@channel_app.command("show")
def channel_show(
    sku: Annotated[str, typer.Argument(help="The SKU.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """A SKU's listings: channel ids, and the quantity and version last pushed to each."""
    listings = _store(connect(stack, region, state_dir)).listings(sku)
    if as_json:
        typer.echo(json.dumps({"sku": sku, "listings": [item.view() for item in listings]}))
        return
    if not listings:
        typer.echo(f"{sku}: not listed on any channel")
        return
    _print(listings)
