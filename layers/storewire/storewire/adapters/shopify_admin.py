"""The Shopify Admin GraphQL API: `PaymentGateway` (an order's transactions),
`ChannelInventory` (`ShopifyChannelInventory`: read and compare-and-set `available`, for
channel sync) and `StorefrontFulfilment` (`ShopifyFulfilment`: `fulfillmentCreate` with the
label's tracking, for label creation); see docs/payments.md and docs/channels.md.

`POST https://{shop}/admin/api/{version}/graphql.json` with `X-Shopify-Access-Token` (or
`{base_url}/admin/api/...` when a base URL is configured, e.g. the local fake). The query
reads the order's transactions; the net of successful SALE/CAPTURE minus REFUND is compared
with the order total by the domain (`storewire.domain.payments.shopify_payment`).

Throttling is cost-based: a throttled answer is HTTP 200 with
`errors[].extensions.code == "THROTTLED"` and `extensions.cost.throttleStatus`; the wait is
`(requestedQueryCost - currentlyAvailable) / restoreRate` seconds, and the shared
`HttpClient` retries after it (or gives the record back to the queue when it will not fit
before the deadline). Other GraphQL errors are permanent, except `INTERNAL_SERVER_ERROR`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from storewire.config import StorefrontSettings
from storewire.domain.channels import ChannelListing, StaleQuantity
from storewire.domain.money import Money
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import GatewayPayment, ShopifyTransaction, shopify_payment
from storewire.errors import ConfigurationError
from storewire.http import (
    Credential,
    Deadline,
    HttpClient,
    PermanentUpstreamError,
    RetryableUpstreamError,
    RetryAfter,
    RetryPolicy,
    credential,
    default_timeout,
    with_fresh_credential,
)
from storewire.labels import FulfilmentRequest
from storewire.ports import SecretProvider

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2025-07"
SERVICE = "shopify_admin"

ORDER_PAYMENT_QUERY = """
query OrderPayment($id: ID!) {
  order(id: $id) {
    id
    name
    currencyCode
    displayFinancialStatus
    totalPriceSet { shopMoney { amount currencyCode } }
    transactions(first: 100) {
      id
      kind
      status
      gateway
      processedAt
      amountSet { shopMoney { amount currencyCode } }
    }
  }
}
""".strip()


def order_gid(external_order_id: str) -> str:
    return f"gid://shopify/Order/{external_order_id}"


def describe_shopify_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) of a non-2xx Admin API answer (`{"errors": "..."}` or a list)."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, str):
        return None, errors[:300]
    return None, str(errors)[:300] if errors else f"HTTP {response.status_code}"


def throttle_wait(body: Any) -> float | None:
    """Seconds to wait when `body` is a THROTTLED answer; None otherwise."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in errors
    ):
        return None
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return 1.0
    if rate <= 0:
        return 1.0
    return max(0.5, (requested - available) / rate)


def _inspect(response: httpx.Response) -> RetryAfter | None:
    try:
        body = response.json()
    except ValueError:
        return None
    wait = throttle_wait(body)
    return None if wait is None else RetryAfter(wait, "THROTTLED")


def _money(node: Any) -> Money:
    shop_money = node["shopMoney"]
    try:
        return Money.parse(Decimal(str(shop_money["amount"])), str(shop_money["currencyCode"]))
    except (InvalidOperation, ValueError) as error:
        raise PermanentUpstreamError(
            f"Shopify sent an unusable amount: {shop_money!r}", service=SERVICE
        ) from error


class ShopifyAdminGateway:
    """Reads an order's transactions from the Admin GraphQL API."""

    name = "shopify"

    def __init__(
        self,
        http: HttpClient,
        access_token: str | Credential,
        *,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self._http = http
        self._token = credential(access_token)
        self._base = base_url.rstrip("/") if base_url else None
        self._version = api_version

    def endpoint(self, shop: str) -> str:
        base = self._base or f"https://{shop}"
        return f"{base}/admin/api/{self._version}/graphql.json"

    def query(self, shop: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The `data` of a read-only query; typed errors for GraphQL `errors`."""
        response = with_fresh_credential(
            lambda token: self._http.request(
                "POST",
                self.endpoint(shop),
                headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                json={"query": query, "variables": variables},
                idempotent=True,
                inspect=_inspect,
            ),
            self._token,
        )
        body: Any = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            codes = {
                str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)
            }
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))[:300]
            if "THROTTLED" in codes or "INTERNAL_SERVER_ERROR" in codes:
                raise RetryableUpstreamError(
                    f"Shopify GraphQL: {message}",
                    service=SERVICE,
                    status=response.status_code,
                    code=sorted(codes)[0],
                    retry_after=throttle_wait(body),
                )
            raise PermanentUpstreamError(
                f"Shopify GraphQL: {message}",
                service=SERVICE,
                status=response.status_code,
                code=",".join(sorted(codes)),
            )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise RetryableUpstreamError("Shopify GraphQL answered without data", service=SERVICE)
        return data

    def fetch_payment(self, order: OrderRecord, reference: str | None) -> GatewayPayment:
        """The net payment Shopify holds for `order` (its transactions, now)."""
        gid = reference or order_gid(order.external_order_id)
        data = self.query(order.shop, ORDER_PAYMENT_QUERY, {"id": gid})
        node = data.get("order")
        if not isinstance(node, dict):
            raise PermanentUpstreamError(
                f"Shopify has no order {gid} in {order.shop}",
                service=SERVICE,
                code="order_not_found",
            )
        transactions = [
            ShopifyTransaction(
                kind=str(t["kind"]),
                status=str(t["status"]),
                gateway=t.get("gateway"),
                amount=_money(t["amountSet"]),
            )
            for t in node.get("transactions") or []
        ]
        return shopify_payment(gid, transactions, order.currency)


# --------------------------------------------------------------------------- stock push
# `ChannelInventory` (storewire.channels) on the Admin GraphQL inventory API.

CHANNEL_API_VERSION = "2026-04"
"""`changeFromQuantity` is required from 2026-04 (before: `compareQuantity` /
`ignoreCompareQuantity`), and `inventorySetQuantities` takes `@idempotent(key:)` from 2026-01
(required from 2026-04)."""

INVENTORY_LEVEL_QUERY = """
query InventoryLevel($itemId: ID!, $locationId: ID!) {
  inventoryItem(id: $itemId) {
    id
    sku
    inventoryLevel(locationId: $locationId) {
      id
      quantities(names: ["available"]) { name quantity }
    }
  }
}
""".strip()

SET_AVAILABLE_MUTATION = """
mutation SetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup {
      id
      reason
      referenceDocumentUri
      changes { name delta quantityAfterChange }
    }
    userErrors { code field message }
  }
}
""".strip()

STALE_CODE = "CHANGE_FROM_QUANTITY_STALE"
RETRYABLE_USER_ERRORS = frozenset({"IDEMPOTENCY_CONCURRENT_REQUEST"})


def _user_errors(payload: Any) -> list[dict[str, Any]]:
    errors = payload.get("userErrors") if isinstance(payload, dict) else None
    return [e for e in errors or [] if isinstance(e, dict)]


def _describe_user_errors(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{e.get('code') or '-'} {'.'.join(str(p) for p in e.get('field') or [])}: "
        f"{e.get('message')}"
        for e in errors
    )[:500]


class ShopifyChannelInventory:
    """Reads and sets `available` of an inventory item at a location (compare-and-set)."""

    def __init__(self, gateway: ShopifyAdminGateway) -> None:
        self._gateway = gateway

    def read_available(self, listing: ChannelListing, shop: str) -> int:
        data = self._gateway.query(
            shop,
            INVENTORY_LEVEL_QUERY,
            {"itemId": listing.inventory_item_id, "locationId": listing.location_id},
        )
        item = data.get("inventoryItem")
        if not isinstance(item, dict):
            raise PermanentUpstreamError(
                f"Shopify has no inventory item {listing.inventory_item_id} in {shop}",
                service=SERVICE,
                code="inventory_item_not_found",
            )
        level = item.get("inventoryLevel")
        if not isinstance(level, dict):
            raise PermanentUpstreamError(
                f"inventory item {listing.inventory_item_id} is not stocked at "
                f"{listing.location_id} in {shop}",
                service=SERVICE,
                code="inventory_level_not_found",
            )
        for quantity in level.get("quantities") or []:
            if isinstance(quantity, dict) and quantity.get("name") == "available":
                return int(quantity["quantity"])
        raise PermanentUpstreamError(
            "Shopify answered the inventory level without 'available'", service=SERVICE
        )

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
        variables = {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": reference,
                "quantities": [
                    {
                        "inventoryItemId": listing.inventory_item_id,
                        "locationId": listing.location_id,
                        "quantity": quantity,
                        "changeFromQuantity": change_from,
                    }
                ],
            },
            "key": idempotency_key,
        }
        data = self._gateway.query(shop, SET_AVAILABLE_MUTATION, variables)
        payload = data.get("inventorySetQuantities")
        errors = _user_errors(payload)
        if not errors:
            return
        codes = {str(e.get("code")) for e in errors}
        message = _describe_user_errors(errors)
        if STALE_CODE in codes:
            raise StaleQuantity(f"Shopify: {message}")
        if codes & RETRYABLE_USER_ERRORS:
            raise RetryableUpstreamError(
                f"Shopify inventorySetQuantities: {message}",
                service=SERVICE,
                code=",".join(sorted(codes)),
            )
        raise PermanentUpstreamError(
            f"Shopify inventorySetQuantities: {message}",
            service=SERVICE,
            code=",".join(sorted(codes)),
        )


# --------------------------------------------------------------------------- fulfilment
# `StorefrontFulfilment` (storewire.labels) on fulfillment orders + `fulfillmentCreate`.

ORDER_FULFILMENT_QUERY = """
query OrderFulfilment($id: ID!) {
  order(id: $id) {
    id
    displayFulfillmentStatus
    fulfillments(first: 50) {
      id
      status
      trackingInfo(first: 10) { company number url }
    }
    fulfillmentOrders(first: 50) {
      nodes {
        id
        status
        assignedLocation { location { id } }
      }
    }
  }
}
""".strip()

FULFILLMENT_CREATE_MUTATION = """
mutation CreateFulfilment($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment {
      id
      status
      trackingInfo(first: 10) { company number url }
    }
    userErrors { field message }
  }
}
""".strip()

FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
DEAD_FULFILLMENTS = frozenset({"CANCELLED", "ERROR", "FAILURE"})

TRACKING_COMPANIES = {
    "usps": ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
    "ups": ("UPS", "https://www.ups.com/track?tracknum={number}"),
    "fedex": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={number}"),
    "dhlexpress": ("DHL Express", "https://www.dhl.com/en/express/tracking.html?AWB={number}"),
    "dhl": ("DHL Express", "https://www.dhl.com/en/express/tracking.html?AWB={number}"),
    "canadapost": (
        "Canada Post",
        "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={number}",
    ),
}
"""Carrier (as the carrier aggregator names it) -> Shopify's tracking company and its public
tracking URL. Unknown carriers keep their name and get no URL (Shopify then shows the number)."""


def tracking_info(carrier: str, number: str) -> dict[str, str]:
    """The `FulfillmentTrackingInput` for a carrier and tracking number."""
    known = TRACKING_COMPANIES.get("".join(ch for ch in carrier.lower() if ch.isalnum()))
    if known is None:
        return {"company": carrier, "number": number}
    company, url = known
    return {"company": company, "number": number, "url": url.format(number=quote(number))}


@dataclass(frozen=True)
class _OrderFulfilment:
    fulfilled_with: str | None
    """The id of a live fulfillment carrying the tracking number, if one exists."""
    open_by_location: dict[str, list[str]]
    """Fulfillable fulfillment order ids, grouped by their assigned location."""
    any_fulfillment_orders: bool


class ShopifyFulfilment:
    """Marks a Shopify order fulfilled with the label's carrier and tracking number, once.

    `fulfillmentCreate` takes no idempotency key, so the once-guard is the order itself:
    before creating, the order's fulfillments are read and one that already carries the
    tracking number ends the step (a retry after a success, or after a lost answer). A
    fulfillment order can be fulfilled once (it closes), so a resent create is refused with
    userErrors; the order is then read again and our tracking number found on it.
    The request's idempotency key (the `LabelCreated` event id) is logged with each step.
    """

    def __init__(self, gateway: ShopifyAdminGateway, *, notify_customer: bool = True) -> None:
        self._gateway = gateway
        self._notify = notify_customer

    def push(self, request: FulfilmentRequest) -> str | None:
        if request.channel != "shopify":
            logger.info(
                "not a Shopify order: no storefront fulfilment",
                extra={"order_id": request.order_id, "channel": request.channel},
            )
            return None
        gid = order_gid(request.external_order_id)
        state = self._read(request.shop, gid, request.tracking_number)
        if not state.open_by_location:
            if state.fulfilled_with is not None:
                return state.fulfilled_with
            if not state.any_fulfillment_orders:
                # Shopify creates fulfillment orders shortly after the order: retry later.
                raise RetryableUpstreamError(
                    f"Shopify order {gid} has no fulfillment orders yet",
                    service=SERVICE,
                    code="fulfillment_orders_missing",
                )
            logger.warning(
                "nothing left to fulfil on the storefront (fulfilled elsewhere?)",
                extra={"order_id": request.order_id, "idempotency_key": request.idempotency_key},
            )
            return None
        created = state.fulfilled_with
        info = tracking_info(request.carrier, request.tracking_number)
        for location, fulfillment_orders in sorted(state.open_by_location.items()):
            data = self._gateway.query(
                request.shop,
                FULFILLMENT_CREATE_MUTATION,
                {
                    "fulfillment": {
                        "lineItemsByFulfillmentOrder": [
                            {"fulfillmentOrderId": fo} for fo in fulfillment_orders
                        ],
                        "trackingInfo": info,
                        "notifyCustomer": self._notify,
                    }
                },
            )
            payload = data.get("fulfillmentCreate")
            errors = _user_errors(payload)
            fulfillment = payload.get("fulfillment") if isinstance(payload, dict) else None
            if not errors and isinstance(fulfillment, dict):
                created = str(fulfillment["id"])
                logger.info(
                    "fulfillment created",
                    extra={
                        "order_id": request.order_id,
                        "fulfillment_id": created,
                        "location": location,
                        "idempotency_key": request.idempotency_key,
                    },
                )
                continue
            # Refused: a resend after a lost answer, or a concurrent attempt. Ours landed?
            again = self._read(request.shop, gid, request.tracking_number)
            still_open = set(again.open_by_location.get(location, ()))
            if again.fulfilled_with is not None and not still_open & set(fulfillment_orders):
                created = again.fulfilled_with
                continue
            raise PermanentUpstreamError(
                f"Shopify fulfillmentCreate refused: {_describe_user_errors(errors)}",
                service=SERVICE,
                code="fulfillment_refused",
            )
        return created

    def _read(self, shop: str, gid: str, tracking_number: str) -> _OrderFulfilment:
        data = self._gateway.query(shop, ORDER_FULFILMENT_QUERY, {"id": gid})
        node = data.get("order")
        if not isinstance(node, dict):
            raise PermanentUpstreamError(
                f"Shopify has no order {gid} in {shop}", service=SERVICE, code="order_not_found"
            )
        fulfilled_with = None
        for fulfillment in node.get("fulfillments") or []:
            if str(fulfillment.get("status")) in DEAD_FULFILLMENTS:
                continue
            numbers = {str(t.get("number")) for t in fulfillment.get("trackingInfo") or []}
            if tracking_number in numbers:
                fulfilled_with = str(fulfillment["id"])
                break
        nodes = (node.get("fulfillmentOrders") or {}).get("nodes") or []
        open_by_location: dict[str, list[str]] = {}
        for fo in nodes:
            if str(fo.get("status")) not in FULFILLABLE:
                continue
            location = ((fo.get("assignedLocation") or {}).get("location") or {}).get("id")
            open_by_location.setdefault(str(location or ""), []).append(str(fo["id"]))
        return _OrderFulfilment(fulfilled_with, open_by_location, bool(nodes))


def storefront_fulfilment(
    settings: StorefrontSettings, secrets: SecretProvider, deadline: Deadline
) -> ShopifyFulfilment | None:
    """The Shopify `StorefrontFulfilment` label creation uses, or None when not configured."""
    if not settings.shopify_admin_token_secret_id:
        return None
    secret_id = settings.shopify_admin_token_secret_id

    def token(refresh: bool = False) -> str:
        # Cached by the provider (5 min); re-read at once after a 401 (a rotated token).
        value = secrets.get(secret_id, force_fetch=refresh).get("current") or ""
        if not value:
            raise ConfigurationError("the Shopify Admin token secret has no 'current' value")
        return value

    http = HttpClient(
        httpx.Client(
            timeout=default_timeout(settings.http_connect_timeout, settings.http_read_timeout)
        ),
        service=SERVICE,
        policy=RetryPolicy(max_attempts=settings.http_max_attempts),
        deadline=deadline,
        describe_error=describe_shopify_error,
    )
    gateway = ShopifyAdminGateway(
        http,
        token,
        base_url=settings.shopify_admin_base_url or None,
        api_version=settings.shopify_api_version,
    )
    return ShopifyFulfilment(gateway, notify_customer=settings.shopify_notify_customer)
