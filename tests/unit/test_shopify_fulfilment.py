"""The label service pushing its fulfilment to Shopify: `ShopifyFulfilment` on the Shopify
Admin fake's logic, in process (an `httpx.MockTransport` into the fake's dispatcher: no
sockets), with the label service's own fakes around it."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import httpx
from fakes_labels import EXTERNAL, ORDER_ID, stock_committed
from storewire.adapters.shopify_admin import (
    ShopifyAdminGateway,
    ShopifyFulfilment,
    describe_shopify_error,
    storefront_fulfilment,
)
from storewire.config import StorefrontSettings
from storewire.domain.shipments import label_event_id
from storewire.errors import RetryableError
from storewire.http import Deadline, HttpClient, RetryPolicy
from storewire.labels import handle_label_event
from storewire_local.fakes.base import FakeRequest
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake
from test_labels_service import World


def in_process(fake: ShopifyAdminFake) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        response, drop = fake.dispatch(
            FakeRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode(),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=request.content,
            )
        )
        if drop or response is None:
            raise httpx.RemoteProtocolError("connection closed", request=request)
        return httpx.Response(
            response.status,
            content=response.encode(),
            headers={"Content-Type": "application/json", **response.headers},
        )

    return httpx.MockTransport(answer)


def shopify(fake: ShopifyAdminFake) -> ShopifyFulfilment:
    http = HttpClient(
        httpx.Client(transport=in_process(fake)),
        service="shopify_admin",
        policy=RetryPolicy(max_attempts=3, base_delay=0.0),
        describe_error=describe_shopify_error,
        sleep=lambda _: None,
    )
    gateway = ShopifyAdminGateway(http, DEFAULT_ADMIN_TOKEN, base_url="http://shopify.test")
    return ShopifyFulfilment(gateway)


def storefront(lines: list[dict[str, Any]] | None = None) -> ShopifyAdminFake:
    fake = ShopifyAdminFake()
    fake.seed_order(
        {
            "id": EXTERNAL,
            "name": "#1001",
            "currency": "USD",
            "total_price": "30.00",
            "financial_status": "paid",
            "line_items": lines
            if lines is not None
            else [
                {"id": 1, "sku": "TEE-M", "quantity": 2},
                {"id": 2, "sku": "MUG", "quantity": 1},
            ],
        }
    )
    return fake


def world_with(fulfilment: Any) -> World:
    world = World()
    world.deps = dataclasses.replace(world.deps, fulfilment=fulfilment)
    return world


def fulfillments(fake: ShopifyAdminFake) -> list[dict[str, Any]]:
    return list(fake.orders[str(EXTERNAL)]["fulfillments"])


def test_a_bought_label_is_pushed_as_one_fulfilment_with_its_tracking() -> None:
    fake = storefront()
    world = world_with(shopify(fake))
    world.placed()

    result = handle_label_event(stock_committed(), world.deps)

    assert result.purchase is not None
    (created,) = fulfillments(fake)
    (tracking,) = created["view"]["trackingInfo"]
    assert tracking["number"] == result.purchase.tracking_number
    assert tracking["company"] == result.purchase.carrier
    assert [fo["status"] for fo in fake.orders[str(EXTERNAL)]["fulfillment_orders"]] == ["CLOSED"]
    record = world.store.get(result.order_id)
    assert record is not None
    assert "fulfilment" in record.steps


def test_redelivered_and_crashed_before_marking_still_one_fulfilment() -> None:
    fake = storefront()
    world = world_with(shopify(fake))
    world.placed()
    real_mark = world.store.mark_steps
    crashed: list[str] = []

    def mark_steps(order_id: str, steps: Any, *, now: Any) -> None:
        if "fulfilment" in steps and not crashed:
            crashed.append("fulfilment")
            raise RetryableError("crashed after the push, before marking it")
        real_mark(order_id, steps, now=now)

    world.store.mark_steps = mark_steps  # type: ignore[method-assign]

    with contextlib.suppress(RetryableError):
        handle_label_event(stock_committed(), world.deps)
    handle_label_event(stock_committed(), world.deps)
    handle_label_event(stock_committed(), world.deps)

    assert crashed == ["fulfilment"]
    assert len(fulfillments(fake)) == 1
    # The crash came after the publish: the redelivery publishes LabelCreated again, same id
    assert {e["event_id"] for e in world.label_events()} == {label_event_id(ORDER_ID)}


def test_the_request_carries_the_label_event_id_as_its_idempotency_key() -> None:
    fake = storefront()
    recorder = RecordingShopify(shopify(fake))
    world = world_with(recorder)
    world.placed()
    handle_label_event(stock_committed(), world.deps)
    assert recorder.keys == [label_event_id(recorder.order_ids[0])]


class RecordingShopify:
    def __init__(self, inner: ShopifyFulfilment) -> None:
        self.inner = inner
        self.keys: list[str] = []
        self.order_ids: list[str] = []

    def push(self, request: Any) -> str | None:
        self.keys.append(request.idempotency_key)
        self.order_ids.append(request.order_id)
        return self.inner.push(request)


def test_not_configured_means_no_storefront_fulfilment() -> None:
    class NoSecrets:
        def get(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, str]:
            raise AssertionError("not read")

    assert storefront_fulfilment(StorefrontSettings.from_env({}), NoSecrets(), Deadline()) is None
    configured = storefront_fulfilment(
        StorefrontSettings.from_env({"SHOPIFY_ADMIN_TOKEN_SECRET_ID": "arn:secret"}),
        NoSecrets(),
        Deadline(),
    )
    assert isinstance(configured, ShopifyFulfilment)
