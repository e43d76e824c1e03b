"""`PaymentGateway` on the Shopify Admin GraphQL API: an order's transactions.

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

from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from storewire.domain.money import Money
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import GatewayPayment, ShopifyTransaction, shopify_payment
from storewire.http import (
    Credential,
    HttpClient,
    PermanentUpstreamError,
    RetryableUpstreamError,
    RetryAfter,
    credential,
    with_fresh_credential,
)

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
