"""Channel sync: coalescing, the version guard, compare-and-set with re-read, the mapping."""

from __future__ import annotations

import pytest
from channel_fakes import (
    ITEM,
    LOCATION,
    SHOP,
    FakeChannel,
    InMemoryListingStore,
    level_event,
    listing,
)
from storewire.channels import (
    ChannelDeps,
    ChannelPushFailed,
    StaleCompareExhausted,
    plan_batch,
    sync_level,
)
from storewire.domain.channels import (
    ALL_LOCATIONS,
    ChannelListing,
    PushOutcome,
    coalesce,
    idempotency_key,
    push_decision,
    reference_uri,
    target_quantity,
)
from storewire.errors import ConfigurationError, RetryableError


def deps(store: InMemoryListingStore, channel: FakeChannel, attempts: int = 4) -> ChannelDeps:
    return ChannelDeps(listings=store, channels={"shopify": channel}, compare_attempts=attempts)


def setup(
    available_on_channel: int = 10, **state: object
) -> tuple[InMemoryListingStore, FakeChannel]:
    store = InMemoryListingStore(listing(**state))
    channel = FakeChannel()
    channel.behind_our_back(ITEM, available_on_channel)
    return store, channel


# ---------------------------------------------------------------- coalescing


def test_given_several_levels_of_one_sku_when_coalesced_then_only_the_newest_is_pushed() -> None:
    plan = coalesce([("m1", "A", 3), ("m2", "A", 7), ("m3", "B", 1), ("m4", "A", 5)])
    assert plan.winners == {"m2": "A", "m3": "B"}
    assert plan.superseded == {"m1": "m2", "m4": "m2"}


def test_given_equal_versions_when_coalesced_then_the_first_wins() -> None:
    plan = coalesce([("m1", "A", 4), ("m2", "A", 4)])
    assert plan.winners == {"m1": "A"}
    assert plan.superseded == {"m2": "m1"}


def test_plan_batch_ignores_other_event_types_and_keeps_the_newest_level() -> None:
    events = [
        ("m1", level_event("A", 2, 5)),
        ("m2", level_event("A", 9, 1)),
        ("m3", level_event("B", 1, 3)),
    ]
    plan = plan_batch(events)
    assert set(plan.push) == {"m2", "m3"}
    assert plan.superseded == {"m1": "m2"}


# ---------------------------------------------------------------- pure decisions


@pytest.mark.parametrize(
    ("state", "version", "expected"),
    [
        ({}, 1, "push"),
        ({"pushed_version": 4}, 4, "already"),
        ({"pushed_version": 4}, 3, "already"),
        ({"pushed_version": 4}, 5, "push"),
        ({"claimed_version": 6, "pushed_version": 4}, 5, "superseded"),
        ({"claimed_version": 5, "pushed_version": 4}, 5, "push"),
    ],
)
def test_push_decision(state: dict[str, int], version: int, expected: str) -> None:
    assert push_decision(listing(**state), version) == expected


def test_target_quantity_per_location_total_missing_and_never_negative() -> None:
    level = level_event("A", 1, {"default": 4, "east": -2, "west": 3}).data
    assert level is not None
    assert target_quantity(level, "default") == 4
    assert target_quantity(level, "east") == 0
    assert target_quantity(level, ALL_LOCATIONS) == 5
    assert target_quantity(level, "north") is None


def test_idempotency_key_is_the_request_same_inputs_same_key_other_compare_other_key() -> None:
    item = listing()
    key = idempotency_key(item, SHOP, 3, 10, 7)
    assert key == idempotency_key(item, SHOP, 3, 10, 7)
    assert key != idempotency_key(item, SHOP, 3, 11, 7)
    assert key != idempotency_key(item, SHOP, 4, 10, 7)
    assert len(key) == 36
    assert reference_uri("TEE/BLK M", 3) == "storewire://stock/TEE%2FBLK%20M/3"


def test_a_listing_key_names_channel_shop_and_location_and_rejects_hashes() -> None:
    assert listing(location="*").key == "shopify##*"
    with pytest.raises(ValueError, match="sku"):
        ChannelListing(sku="A#1", location="default", inventory_item_id="i", location_id="l")


# ---------------------------------------------------------------- pushing


def test_first_push_reads_the_channel_then_sets_comparing_against_it() -> None:
    store, channel = setup(available_on_channel=10)

    result = sync_level(level_event("SKU-1", 3, 7), deps(store, channel))

    assert [p.outcome for p in result.pushes] == [PushOutcome.PUSHED]
    assert channel.levels[(ITEM, LOCATION)] == 7
    assert channel.sets == [(ITEM, 7, 10)]
    recorded = store.listings("SKU-1")[0]
    assert (recorded.pushed_version, recorded.pushed_quantity, recorded.claimed_version) == (
        3,
        7,
        3,
    )


def test_later_pushes_compare_against_what_was_pushed_without_reading() -> None:
    store, channel = setup(available_on_channel=7, pushed_version=3, pushed_quantity=7)

    sync_level(level_event("SKU-1", 4, 6), deps(store, channel))

    assert channel.reads == 0
    assert channel.sets == [(ITEM, 6, 7)]


def test_the_same_level_redelivered_changes_nothing() -> None:
    store, channel = setup(available_on_channel=10)
    event = level_event("SKU-1", 3, 7)
    sync_level(event, deps(store, channel))

    for _ in range(3):
        result = sync_level(event, deps(store, channel))
        assert [p.outcome for p in result.pushes] == [PushOutcome.ALREADY]

    assert channel.sets == [(ITEM, 7, 10)]


def test_an_older_level_after_a_newer_one_never_overwrites_it() -> None:
    store, channel = setup(available_on_channel=10)
    sync_level(level_event("SKU-1", 5, 2), deps(store, channel))

    result = sync_level(level_event("SKU-1", 4, 3), deps(store, channel))

    assert [p.outcome for p in result.pushes] == [PushOutcome.ALREADY]
    assert channel.levels[(ITEM, LOCATION)] == 2


def test_a_crash_after_the_set_before_the_record_is_replayed_by_the_same_key() -> None:
    store, channel = setup(available_on_channel=7, pushed_version=3, pushed_quantity=7)
    real_record = store.record_push
    crashes = iter([True])

    def crash_once(*args: object, **kwargs: object) -> bool:
        if next(crashes, False):
            raise RetryableError("crashed before recording")
        return real_record(*args, **kwargs)  # type: ignore[arg-type]

    store.record_push = crash_once  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        sync_level(level_event("SKU-1", 4, 5), deps(store, channel))
    # redelivered: the same compare value, so the same key; the channel answers from it
    result = sync_level(level_event("SKU-1", 4, 5), deps(store, channel))

    assert [p.outcome for p in result.pushes] == [PushOutcome.PUSHED]
    assert channel.sets == [(ITEM, 5, 7)]  # the redelivery was answered from the key
    assert store.listings("SKU-1")[0].pushed_version == 4


def test_stale_compare_rereads_the_channel_and_still_sets_the_right_quantity() -> None:
    store, channel = setup(available_on_channel=7, pushed_version=3, pushed_quantity=7)
    channel.behind_our_back(ITEM, 12)  # someone changed it on the storefront

    result = sync_level(level_event("SKU-1", 4, 6), deps(store, channel))

    push = result.pushes[0]
    assert (push.outcome, push.stale, push.attempts, push.change_from) == (
        PushOutcome.PUSHED,
        1,
        2,
        12,
    )
    assert channel.levels[(ITEM, LOCATION)] == 6
    assert channel.reads == 1


def test_a_quantity_that_keeps_changing_gives_up_after_the_bound_and_is_retried() -> None:
    store, channel = setup(available_on_channel=7, pushed_version=3, pushed_quantity=7)
    changes = iter(range(100, 200))

    class Moving(FakeChannel):
        def set_available(self, *args: object, **kwargs: object) -> None:
            self.behind_our_back(ITEM, next(changes))
            super().set_available(*args, **kwargs)  # type: ignore[arg-type]

    moving = Moving()
    moving.levels = channel.levels

    with pytest.raises(RetryableError) as raised:
        sync_level(level_event("SKU-1", 4, 6), deps(store, moving, attempts=3))

    assert "SKU-1@4" in raised.value.message
    assert moving.sets == []
    assert store.listings("SKU-1")[0].pushed_version == 3
    assert issubclass(StaleCompareExhausted, RetryableError)


def test_a_stale_compare_while_a_newer_level_was_claimed_stands_down() -> None:
    store, channel = setup(available_on_channel=7, pushed_version=3, pushed_quantity=7)
    channel.before_set = lambda: channel.behind_our_back(ITEM, 1)

    def newer_claims() -> None:
        store.claim(store.listings("SKU-1")[0], 9)

    store.before_get = newer_claims

    result = sync_level(level_event("SKU-1", 4, 6), deps(store, channel))

    assert [p.outcome for p in result.pushes] == [PushOutcome.SUPERSEDED]
    assert channel.levels[(ITEM, LOCATION)] == 1  # left for version 9 to set
    assert store.listings("SKU-1")[0].pushed_version == 3


def test_a_level_older_than_a_claimed_one_does_not_even_claim() -> None:
    store, channel = setup(available_on_channel=7, claimed_version=9, pushed_version=3)

    result = sync_level(level_event("SKU-1", 4, 6), deps(store, channel))

    assert [p.outcome for p in result.pushes] == [PushOutcome.SUPERSEDED]
    assert channel.sets == []


def test_every_listing_is_tried_and_a_refused_one_fails_the_record_permanently() -> None:
    good = listing(location="default")
    bad = listing(location="*", item="gid://shopify/InventoryItem/999")
    store = InMemoryListingStore(good, bad)
    channel = FakeChannel()
    channel.behind_our_back(ITEM, 1)
    channel.refuse.add("gid://shopify/InventoryItem/999")

    with pytest.raises(ChannelPushFailed, match="shopify##\\*"):
        sync_level(level_event("SKU-1", 2, 4), deps(store, channel))

    assert channel.levels[(ITEM, LOCATION)] == 4
    assert store.get("SKU-1", good.key).pushed_version == 2  # type: ignore[union-attr]


def test_an_unknown_channel_is_a_configuration_error() -> None:
    store = InMemoryListingStore(listing().model_copy(update={"channel": "woocommerce"}))
    with pytest.raises(ChannelPushFailed, match="woocommerce"):
        sync_level(level_event("SKU-1", 2, 4), deps(store, FakeChannel()))
    assert issubclass(ConfigurationError, Exception)


def test_unlisted_sku_and_missing_location_row_change_nothing() -> None:
    store, channel = setup(available_on_channel=3)
    assert sync_level(level_event("OTHER", 2, 4), deps(store, channel)).outcome == "unlisted"
    result = sync_level(level_event("SKU-1", 2, {"east": 4}), deps(store, channel))
    assert [p.outcome for p in result.pushes] == [PushOutcome.NO_LEVEL]
    assert channel.sets == []


def test_remapping_keeps_the_push_state() -> None:
    store = InMemoryListingStore(listing(pushed_version=4, pushed_quantity=2))
    store.put_mapping(listing(item="gid://shopify/InventoryItem/101"))
    assert store.listings("SKU-1")[0].pushed_version == 4
