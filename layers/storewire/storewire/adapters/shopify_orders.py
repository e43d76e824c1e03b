"""`StorefrontOrders` on Shopify: the orders connection (GraphQL) and the order JSON (REST).

Listing: Admin GraphQL ``orders(first:, after:, query: "updated_at:>'…'", sortKey:
UPDATED_AT)`` with ``edges { cursor node { id legacyResourceId updatedAt } }`` and
``pageInfo { hasNextPage endCursor }``; ``extensions.cost`` (``requestedQueryCost``,
``throttleStatus.currentlyAvailable``, ``restoreRate``) is returned with each page so the
reconciliation can pace itself. A THROTTLED answer is waited out by the shared `HttpClient`
(the wait Shopify's cost figures give, never past the deadline).

Fetching: the order to re-emit is read as ``GET /admin/api/{version}/orders/{id}.json``,
whose ``order`` is the very JSON the ``orders/*`` webhooks carry; the reconciliation feeds
it to the webhook's own normalisation (`storewire.sources.shopify.normalise_payload`), so
an order re-emitted and an order received are the same canonical events. Mapping the
GraphQL node back to the webhook shape would be a second, drifting normaliser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from storewire.adapters.shopify_admin import SERVICE, _inspect, describe_shopify_error
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError
from storewire.http import Credential, HttpClient, credential, with_fresh_credential
from storewire.reconciliation import OrderPage, OrderSummary, Throttle

DEFAULT_API_VERSION = "2025-07"

ORDERS_QUERY = """
query ReconcileOrders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges { cursor node { id legacyResourceId updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}
""".strip()


def updated_since_query(since: datetime) -> str:
    """Shopify's search syntax for "updated after `since`" (UTC, second precision)."""
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>'{stamp}'"


def _time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_throttle(body: Any) -> Throttle | None:
    cost = ((body or {}).get("extensions") or {}).get("cost") if isinstance(body, dict) else None
    if not isinstance(cost, dict):
        return None
    status = cost.get("throttleStatus") or {}
    try:
        return Throttle(
            requested=float(cost.get("requestedQueryCost") or 0),
            available=float(status.get("currentlyAvailable") or 0),
            restore_rate=float(status.get("restoreRate") or 0),
        )
    except (TypeError, ValueError):
        return None


class ShopifyStorefrontOrders:
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

    def _url(self, shop: str, path: str) -> str:
        base = self._base or f"https://{shop}"
        return f"{base}/admin/api/{self._version}/{path}"

    def list_updated(
        self, shop: str, since: datetime, *, first: int, after: str | None
    ) -> OrderPage:
        variables = {"first": first, "after": after, "query": updated_since_query(since)}
        response = with_fresh_credential(
            lambda token: self._http.request(
                "POST",
                self._url(shop, "graphql.json"),
                headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
                json={"query": ORDERS_QUERY, "variables": variables},
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
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            error_type = (
                RetryableUpstreamError
                if codes & {"THROTTLED", "INTERNAL_SERVER_ERROR"}
                else PermanentUpstreamError
            )
            raise error_type(f"Shopify GraphQL: {message[:300]}", service=SERVICE)
        connection = ((body.get("data") or {}).get("orders")) if isinstance(body, dict) else None
        if not isinstance(connection, dict):
            raise RetryableUpstreamError("Shopify GraphQL answered without orders", service=SERVICE)
        orders = tuple(
            OrderSummary(
                external_order_id=str(
                    edge["node"].get("legacyResourceId") or edge["node"]["id"].rsplit("/", 1)[-1]
                ),
                updated_at=_time(edge["node"]["updatedAt"]),
            )
            for edge in connection.get("edges") or []
        )
        info = connection.get("pageInfo") or {}
        return OrderPage(
            orders=orders,
            has_next_page=bool(info.get("hasNextPage")),
            end_cursor=info.get("endCursor"),
            throttle=parse_throttle(body),
        )

    def fetch_order(self, shop: str, external_order_id: str) -> dict[str, Any] | None:
        try:
            response = with_fresh_credential(
                lambda token: self._http.request(
                    "GET",
                    self._url(shop, f"orders/{external_order_id}.json"),
                    headers={"X-Shopify-Access-Token": token},
                    idempotent=True,
                ),
                self._token,
            )
        except PermanentUpstreamError as error:
            if error.status == 404:
                return None
            raise
        body: Any = response.json()
        order = body.get("order") if isinstance(body, dict) else None
        return order if isinstance(order, dict) else None


__all__ = ["ORDERS_QUERY", "ShopifyStorefrontOrders", "describe_shopify_error"]
