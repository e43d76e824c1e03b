"""Hand-written fakes of the channel sync ports (no Mock()), and StockLevelChanged builders.

`InMemoryListingStore` enforces the DynamoDB adapter's conditions (claim: no newer claim or
push; record: no newer push). `FakeChannel` is a channel inventory with compare-and-set and
idempotency keys, as Shopify's `inventorySetQuantities`; `behind_our_back` changes a quantity
the way a storefront sale or a merchant's edit would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from storewire.domain.channels import ChannelListing, StaleQuantity
from storewire.domain.events import StockLevelChanged, StockLevelData, StockLocationLevel
from storewire.errors import PermanentUpstreamError
from storewire.stock import stock_event_id

SHOP = "storewire-demo.myshopify.com"
ITEM = "gid://shopify/InventoryItem/101"
LOCATION = "gid://shopify/Location/1"


def level_event(sku: str, version: int, available: dict[str, int] | int) -> StockLevelChanged:
    per_location = available if isinstance(available, dict) else {"default": available}
    rows = tuple(
        StockLocationLevel(location=name, on_hand=max(q, 0), reserved=0, available=q)
        for name, q in per_location.items()
    )
    total = sum(per_location.values())
    return StockLevelChanged(
        event_id=stock_event_id(f"{sku}@{version}", "StockLevelChanged"),
        occurred_at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
        source="stock",
        shop=SHOP,
        channel="shopify",
        order_id=f"shopify:{SHOP}:1",
        correlation_id=f"shopify:{SHOP}:1",
        delivery_id="evt_cause",
        data=StockLevelData(
            sku=sku,
            on_hand=max(total, 0),
            reserved=0,
            available=total,
            version=version,
            locations=rows,
        ),
    )


def listing(
    sku: str = "SKU-1", location: str = "default", item: str = ITEM, **state: object
) -> ChannelListing:
    return ChannelListing.model_validate(
        {
            "sku": sku,
            "location": location,
            "inventory_item_id": item,
            "location_id": LOCATION,
            **state,
        }
    )


class InMemoryListingStore:
    def __init__(self, *listings: ChannelListing) -> None:
        self.items: dict[tuple[str, str], ChannelListing] = {}
        self.claims: list[tuple[str, int]] = []
        self.before_get: Callable[[], None] | None = None
        for item in listings:
            self.items[(item.sku, item.key)] = item

    def listings(self, sku: str) -> list[ChannelListing]:
        return [v for (s, _), v in sorted(self.items.items()) if s == sku]

    def get(self, sku: str, key: str) -> ChannelListing | None:
        if self.before_get is not None:
            self.before_get()
        return self.items.get((sku, key))

    def put_mapping(self, item: ChannelListing) -> ChannelListing:
        current = self.items.get((item.sku, item.key))
        if current is not None:
            item = item.model_copy(
                update={
                    "claimed_version": current.claimed_version,
                    "pushed_version": current.pushed_version,
                    "pushed_quantity": current.pushed_quantity,
                    "pushed_at": current.pushed_at,
                }
            )
        self.items[(item.sku, item.key)] = item
        return item

    def claim(self, item: ChannelListing, version: int) -> bool:
        current = self.items[(item.sku, item.key)]
        if current.claimed_version is not None and current.claimed_version > version:
            return False
        if current.pushed_version is not None and current.pushed_version >= version:
            return False
        self.items[(item.sku, item.key)] = current.model_copy(update={"claimed_version": version})
        self.claims.append((item.key, version))
        return True

    def record_push(self, item: ChannelListing, version: int, quantity: int, at: datetime) -> bool:
        current = self.items[(item.sku, item.key)]
        if current.pushed_version is not None and current.pushed_version >= version:
            return False
        self.items[(item.sku, item.key)] = current.model_copy(
            update={"pushed_version": version, "pushed_quantity": quantity, "pushed_at": at}
        )
        return True


class FakeChannel:
    """An inventory API: `levels[(item, location)] = available`, CAS and idempotency keys."""

    def __init__(self) -> None:
        self.levels: dict[tuple[str, str], int] = {}
        self.keys: dict[str, tuple[tuple[str, str, int, int | None], bool]] = {}
        self.sets: list[tuple[str, int, int | None]] = []
        self.reads = 0
        self.before_set: Callable[[], None] | None = None
        self.refuse: set[str] = set()

    def behind_our_back(self, item: str, available: int, location: str = LOCATION) -> None:
        self.levels[(item, location)] = available

    def read_available(self, item: ChannelListing, shop: str) -> int:
        self.reads += 1
        if item.inventory_item_id in self.refuse:
            raise PermanentUpstreamError("no such item", service="fake")
        return self.levels[(item.inventory_item_id, item.location_id)]

    def set_available(
        self,
        item: ChannelListing,
        shop: str,
        *,
        quantity: int,
        change_from: int | None,
        idempotency_key: str,
        reference: str,
    ) -> None:
        if item.inventory_item_id in self.refuse:
            raise PermanentUpstreamError("no such item", service="fake")
        if self.before_set is not None:
            hook, self.before_set = self.before_set, None
            hook()
        request = (item.inventory_item_id, item.location_id, quantity, change_from)
        if idempotency_key in self.keys:
            first, ok = self.keys[idempotency_key]
            assert first == request, "same key, other arguments"
            if not ok:
                raise StaleQuantity("replayed stale")
            return
        where = (item.inventory_item_id, item.location_id)
        current = self.levels[where]
        if change_from is not None and change_from != current:
            self.keys[idempotency_key] = (request, False)
            raise StaleQuantity("CHANGE_FROM_QUANTITY_STALE", actual=current)
        self.levels[where] = quantity
        self.keys[idempotency_key] = (request, True)
        self.sets.append((item.inventory_item_id, quantity, change_from))
