"""Channel sync: `StockLevelChanged` in, the available quantity set on every sales channel.

Pure of AWS and HTTP: the listing table and the channels' inventory APIs are ports (below).

For each SKU of an SQS batch only the newest level is pushed (`plan_batch`: the others are
superseded and reported done). For each listing of the SKU (`ChannelListingStore.listings`):

1. **decide** - `pushed_version >= version`: already pushed (a redelivery), nothing to do;
   `claimed_version > version`: a newer level is being pushed, stand down.
2. **claim** - a conditional write raises `claimed_version` to this version (refused when a
   newer one was claimed or pushed meanwhile: stand down).
3. **set** - `ChannelInventory.set_available(quantity, change_from=pushed_quantity)`: a
   compare-and-set on the channel, with an idempotency key derived from the request (the
   same request after a lost answer or a redelivery changes nothing twice). Before the first
   push of a listing, the channel's quantity is read to compare against.
4. **stale compare** (someone changed the channel's quantity behind our back, e.g. the
   channel's own order decremented it) - re-read the listing: if a newer version was claimed,
   stand down; else re-read the channel's quantity and set again comparing against it.
   Bounded (`compare_attempts`); then the record fails and SQS redelivers it.
5. **record** - `pushed_version`, `pushed_quantity` (conditioned on no newer push).

Failures are per listing: every listing of the level is tried; then a retryable failure
fails the record (SQS redelivers; listings already pushed skip at step 1), else a permanent
one (`ChannelPushFailed`) sends it to the DLQ with the reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from storewire.domain.channels import (
    ChannelListing,
    ListingPush,
    PushOutcome,
    StaleQuantity,
    coalesce,
    idempotency_key,
    push_decision,
    reference_uri,
    target_quantity,
)
from storewire.domain.events import CanonicalEvent, StockLevelData
from storewire.errors import (
    ConfigurationError,
    MalformedPayload,
    PermanentError,
    RetryableError,
    StorewireError,
)

logger = logging.getLogger(__name__)


class ChannelPushFailed(PermanentError):
    """A listing refused the push for a reason retrying cannot fix (unknown item, bad id)."""


class StaleCompareExhausted(RetryableError):
    """The channel's quantity kept changing under every compare-and-set attempt."""


# --------------------------------------------------------------------------- ports


class ChannelListingStore(Protocol):
    """Listings per SKU and their push state (`DynamoDBChannelListingStore`; a fake in tests)."""

    def listings(self, sku: str) -> list[ChannelListing]:
        """Every listing of `sku` (strongly consistent)."""
        ...

    def get(self, sku: str, key: str) -> ChannelListing | None:
        """One listing by its key (`ChannelListing.key`), strongly consistent."""
        ...

    def put_mapping(self, listing: ChannelListing) -> ChannelListing:
        """Create or re-point a listing (ids, `mapped_at`); its push state is kept."""
        ...

    def claim(self, listing: ChannelListing, version: int) -> bool:
        """Raise `claimed_version` to `version`; False when a newer one was claimed or pushed."""
        ...

    def record_push(
        self, listing: ChannelListing, version: int, quantity: int, at: datetime
    ) -> bool:
        """Record the push of `version`; False when a newer push is recorded already."""
        ...


class ChannelInventory(Protocol):
    """A sales channel's inventory API (Shopify Admin GraphQL)."""

    def read_available(self, listing: ChannelListing, shop: str) -> int:
        """The channel's available quantity of the listing's item at its location, now."""
        ...

    def set_available(
        self,
        listing: ChannelListing,
        shop: str,
        *,
        quantity: int,
        change_from: int | None,
        idempotency_key: str,
        reference: str,
    ) -> None:
        """Set available to `quantity` if it is `change_from` now; `StaleQuantity` if not."""
        ...


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class ChannelDeps:
    listings: ChannelListingStore
    channels: Mapping[str, ChannelInventory]
    compare_attempts: int = 4
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ChannelResult:
    sku: str | None
    version: int | None
    outcome: str
    pushes: tuple[ListingPush, ...] = ()


@dataclass(frozen=True)
class BatchPlan:
    """Per record id: the level to push, or the record that supersedes it."""

    push: dict[str, CanonicalEvent]
    superseded: dict[str, str]


def level_of(event: CanonicalEvent) -> StockLevelData:
    data = event.data
    if event.event_type != "StockLevelChanged" or not isinstance(data, StockLevelData):
        raise MalformedPayload(f"{event.event_type} {event.event_id} carries no stock level")
    return data


def plan_batch(events: Sequence[tuple[str, CanonicalEvent]]) -> BatchPlan:
    """Coalesce a batch: per SKU only the record with the newest level is pushed."""
    levels = [(record_id, level_of(event)) for record_id, event in events if _is_level(event)]
    chosen = coalesce([(rid, level.sku, level.version) for rid, level in levels])
    by_id = dict(events)
    return BatchPlan(
        push={rid: by_id[rid] for rid in chosen.winners}, superseded=dict(chosen.superseded)
    )


def _is_level(event: CanonicalEvent) -> bool:
    return event.event_type == "StockLevelChanged" and isinstance(event.data, StockLevelData)


def sync_level(event: CanonicalEvent, deps: ChannelDeps) -> ChannelResult:
    """Push one level to every listing of its SKU (see the module docstring)."""
    if event.event_type != "StockLevelChanged":
        return ChannelResult(sku=None, version=None, outcome="ignored")
    level = level_of(event)
    listings = deps.listings.listings(level.sku)
    if not listings:
        return ChannelResult(sku=level.sku, version=level.version, outcome="unlisted")
    pushes: list[ListingPush] = []
    retryable: list[str] = []
    permanent: list[str] = []
    for listing in listings:
        try:
            pushes.append(push_listing(listing, event.shop, level, deps))
        except RetryableError as error:
            retryable.append(f"{listing.key}: {error.message}")
            pushes.append(_failed(listing, error))
        except (PermanentError, MalformedPayload) as error:
            permanent.append(f"{listing.key}: {error.message}")
            pushes.append(_failed(listing, error))
    for push in pushes:
        logger.info(
            "channel push %s",
            push.outcome,
            extra={
                "sku": level.sku,
                "version": level.version,
                "listing": push.listing,
                "outcome": push.outcome,
                "quantity": push.quantity,
                "stale": push.stale,
            },
        )
    if retryable:
        raise RetryableError(f"{level.sku}@{level.version}: " + "; ".join(retryable)[:900])
    if permanent:
        raise ChannelPushFailed(f"{level.sku}@{level.version}: " + "; ".join(permanent)[:900])
    return ChannelResult(
        sku=level.sku, version=level.version, outcome="synced", pushes=tuple(pushes)
    )


def _failed(listing: ChannelListing, error: StorewireError) -> ListingPush:
    return ListingPush(listing=listing.key, outcome=PushOutcome.FAILED, reason=error.message)


def push_listing(
    listing: ChannelListing, event_shop: str, level: StockLevelData, deps: ChannelDeps
) -> ListingPush:
    """Steps 1-5 of the module docstring for one listing."""
    version = level.version
    decision = push_decision(listing, version)
    if decision != "push":
        return ListingPush(listing=listing.key, outcome=PushOutcome(decision))
    quantity = target_quantity(level, listing.location)
    if quantity is None:
        return ListingPush(listing=listing.key, outcome=PushOutcome.NO_LEVEL)
    channel = deps.channels.get(listing.channel)
    if channel is None:
        raise ConfigurationError(f"no adapter for the sales channel {listing.channel!r}")
    if not deps.listings.claim(listing, version):
        return ListingPush(listing=listing.key, outcome=PushOutcome.SUPERSEDED)
    shop = listing.shop_for(event_shop)
    change_from = listing.pushed_quantity
    if change_from is None:
        change_from = channel.read_available(listing, shop)
    stale = 0
    attempts = 0
    while True:
        attempts += 1
        try:
            channel.set_available(
                listing,
                shop,
                quantity=quantity,
                change_from=change_from,
                idempotency_key=idempotency_key(listing, shop, version, change_from, quantity),
                reference=reference_uri(listing.sku, version),
            )
            break
        except StaleQuantity as error:
            stale += 1
            logger.warning(
                "stale compare on the channel",
                extra={
                    "sku": listing.sku,
                    "listing": listing.key,
                    "version": version,
                    "change_from": change_from,
                    "actual": error.actual,
                },
            )
            current = deps.listings.get(listing.sku, listing.key)
            if current is not None and push_decision(current, version) != "push":
                return ListingPush(
                    listing=listing.key,
                    outcome=PushOutcome.SUPERSEDED,
                    attempts=attempts,
                    stale=stale,
                )
            if attempts >= deps.compare_attempts:
                raise StaleCompareExhausted(
                    f"the channel's quantity changed under {attempts} compare-and-set attempts"
                ) from None
            change_from = channel.read_available(listing, shop)
    at = deps.clock()
    deps.listings.record_push(listing, version, quantity, at)
    return ListingPush(
        listing=listing.key,
        outcome=PushOutcome.PUSHED,
        quantity=quantity,
        change_from=change_from,
        attempts=attempts,
        stale=stale,
        at=at,
    )
