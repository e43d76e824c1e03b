"""Sales-channel listings and the pure rules of pushing stock to them (no boto3, no httpx).

A **listing** says where a SKU's stock at one of our locations is sold: on which channel
(`shopify`), in which shop, as which inventory item at which of the channel's locations. It
also remembers what was pushed to it last (`pushed_version`, `pushed_quantity`) and the
newest version an attempt has started to push (`claimed_version`), which is what keeps an
older level from ever overwriting a newer one, whatever the order of deliveries.

The location `*` (`ALL_LOCATIONS`) maps the SKU's total available over every location, for a
channel that sells from one pool.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import quote

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from storewire.domain.events import StockLevelData

ALL_LOCATIONS = "*"
"""A listing on this location takes the SKU's total available over every location."""

DEFAULT_CHANNEL = "shopify"


class ChannelListing(BaseModel):
    """One (SKU, our location) as listed on one channel and shop, and what was pushed to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1, pattern=r"^[^#]+$")
    location: str = Field(min_length=1, pattern=r"^[^#]+$", description="Ours, or '*'")
    channel: str = Field(default=DEFAULT_CHANNEL, min_length=1, pattern=r"^[^#]+$")
    shop: str = Field(
        default="",
        pattern=r"^[^#]*$",
        description="The channel's shop (e.g. x.myshopify.com); empty: the event's shop",
    )
    inventory_item_id: str = Field(min_length=1, description="e.g. gid://shopify/InventoryItem/1")
    location_id: str = Field(min_length=1, description="e.g. gid://shopify/Location/1")
    mapped_at: AwareDatetime | None = None
    claimed_version: int | None = Field(
        default=None, description="The newest version an attempt started to push"
    )
    pushed_version: int | None = Field(default=None, description="The version last pushed")
    pushed_quantity: int | None = Field(default=None, description="The quantity last pushed")
    pushed_at: AwareDatetime | None = None

    @property
    def key(self) -> str:
        """The listing's sort key under its SKU: `{channel}#{shop}#{location}`."""
        return listing_key(self.channel, self.shop, self.location)

    def shop_for(self, event_shop: str) -> str:
        return self.shop or event_shop

    def view(self) -> dict[str, object]:
        """The JSON `storewire channel show` prints."""
        return self.model_dump(mode="json")


def listing_key(channel: str, shop: str, location: str) -> str:
    return f"{channel}#{shop}#{location}"


# --------------------------------------------------------------------------- coalescing


@dataclass(frozen=True)
class Coalesced[K: Hashable]:
    """Which item of a batch carries each SKU's newest level, and which are superseded."""

    winners: dict[K, str]
    """item key -> SKU: the items to push."""
    superseded: dict[K, K]
    """item key -> the key of the item that supersedes it (same SKU, newer or equal version)."""


def coalesce[K: Hashable](items: Sequence[tuple[K, str, int]]) -> Coalesced[K]:
    """Keep, per SKU, the item with the highest version (the first of equals).

    `items` are (key, sku, version) in batch order. Only the newest level of a SKU is worth
    pushing: an older one would be refused by the version guard anyway, after a network
    round trip.
    """
    best: dict[str, tuple[K, int]] = {}
    for key, sku, version in items:
        current = best.get(sku)
        if current is None or version > current[1]:
            best[sku] = (key, version)
    winners = {key: sku for sku, (key, _) in best.items()}
    superseded = {key: best[sku][0] for key, sku, _ in items if key not in winners}
    return Coalesced(winners=winners, superseded=superseded)


# --------------------------------------------------------------------------- decisions


class PushOutcome(StrEnum):
    PUSHED = "pushed"
    """The channel now holds the level's quantity (set by us in this attempt)."""
    ALREADY = "already"
    """This version (or a newer one) was pushed before: nothing to do (a redelivery)."""
    SUPERSEDED = "superseded"
    """A newer version is being or was pushed by another attempt: this one stands down."""
    NO_LEVEL = "no_level"
    """The level has no row for the listing's location."""
    FAILED = "failed"


Decision = Literal["push", "already", "superseded"]


def push_decision(listing: ChannelListing, version: int) -> Decision:
    """Whether `version` of the SKU's level may still be pushed to `listing`."""
    if listing.pushed_version is not None and listing.pushed_version >= version:
        return "already"
    if listing.claimed_version is not None and listing.claimed_version > version:
        return "superseded"
    return "push"


def target_quantity(level: StockLevelData, location: str) -> int | None:
    """What the channel should show as available for `location` (never below 0)."""
    if location == ALL_LOCATIONS:
        return max(0, level.available)
    for row in level.locations:
        if row.location == location:
            return max(0, row.available)
    return None


def idempotency_key(
    listing: ChannelListing, shop: str, version: int, change_from: int | None, quantity: int
) -> str:
    """The channel-side idempotency key of one set: the same request -> the same key.

    Derived from everything that makes the request what it is, so a redelivery resends the
    same key (and the channel answers with the first result instead of changing twice), and a
    retry after a stale compare (another `change_from`) is a distinct request with its own key.
    UUID-shaped, as Shopify recommends.
    """
    material = "|".join(
        [
            listing.channel,
            shop,
            listing.inventory_item_id,
            listing.location_id,
            str(version),
            "null" if change_from is None else str(change_from),
            str(quantity),
        ]
    )
    return str(uuid.UUID(bytes=hashlib.sha256(material.encode()).digest()[:16], version=5))


def reference_uri(sku: str, version: int) -> str:
    """The `referenceDocumentUri` of a push: which level of which SKU it carried."""
    return f"storewire://stock/{quote(sku, safe='')}/{version}"


class StaleQuantity(Exception):
    """The channel's quantity is not the `change_from` we sent (someone changed it)."""

    def __init__(self, message: str, actual: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.actual = actual


@dataclass(frozen=True)
class ListingPush:
    """What happened to one listing."""

    listing: str
    outcome: PushOutcome
    quantity: int | None = None
    change_from: int | None = None
    attempts: int = 0
    stale: int = 0
    reason: str | None = None
    at: datetime | None = None
