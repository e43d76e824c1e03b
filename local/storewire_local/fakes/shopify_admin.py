"""A local Shopify Admin GraphQL API: orders and their transactions, with cost throttling.

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token`` (from
``SHOPIFY_ADMIN_TOKEN``, development default ``shpat_storewire_dev_token``) and a JSON body
``{"query", "variables"}``. A tiny query matcher answers the ``order(id: $id)`` query
(any selection of ``id name currencyCode displayFinancialStatus totalPriceSet
totalReceivedSet transactions``: the fake answers them all) in Shopify's response shape:
``{"data": {...}, "extensions": {"cost": {"requestedQueryCost", "actualQueryCost",
"throttleStatus": {"maximumAvailable", "currentlyAvailable", "restoreRate"}}}}``.

Throttling is Shopify's leaky bucket: each query takes its requested cost from the bucket
(refilled at ``restoreRate`` points a second); a query that does not fit is answered
``{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}`` with the
cost extensions (HTTP 200, as Shopify does). The fault ``{"mode": "throttle"}`` forces it.

Control plane: ``POST /_fake/orders`` seeds an order, either a Shopify REST/webhook order
payload (``id``, ``name``, ``currency``, ``total_price``, ``financial_status``) or that plus
``transactions`` ``[{"kind": "SALE", "status": "SUCCESS", "amount": "10.00", "gateway"}]``.
Without transactions, ``paid`` gets one successful SALE of the total, ``authorized`` one
AUTHORIZATION, ``pending`` none. ``POST /_fake/bucket`` ``{"currentlyAvailable": 0}`` sets
the bucket.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from .base import FakeRequest, FakeResponse, FakeServer

DEFAULT_ADMIN_TOKEN = "shpat_storewire_dev_token"  # noqa: S105 - the public dev default
MAXIMUM_AVAILABLE = 2000.0
RESTORE_RATE = 100.0
ORDER_QUERY_COST = 3
"""Requested cost of the order query: the order (1) + the transactions list (2)."""

_GRAPHQL_PATH = re.compile(r"^/admin/api/[0-9]{4}-[0-9]{2}/graphql\.json$")
_ORDER_GID = re.compile(r"^gid://shopify/Order/([0-9]+)$")


def _money(amount: str, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": amount, "currencyCode": currency}}


class ShopifyAdminFake(FakeServer):
    name = "shopify_admin"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = DEFAULT_ADMIN_TOKEN,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.orders: dict[str, dict[str, Any]] = {}
        self._clock = clock
        self._available = MAXIMUM_AVAILABLE
        self._refilled_at = clock()
        self._tx_seq = 1000

    # -- faults in Shopify's shapes

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        return FakeResponse(status, {"errors": "Internal Server Error"})

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        if request.path.startswith("/admin/"):
            return FakeResponse(200, self._throttled(0.0))
        return FakeResponse(429, {"errors": "Exceeded 2 calls per second for api client."})

    # -- the API

    def handle(self, request: FakeRequest) -> FakeResponse:
        if not _GRAPHQL_PATH.match(request.path) or request.method != "POST":
            return FakeResponse(404, {"errors": "Not Found"})
        token = request.header("x-shopify-access-token")
        if not token or not hmac.compare_digest(token, self.access_token):
            return FakeResponse(
                401,
                {
                    "errors": "[API] Invalid API key or access token "
                    "(unrecognized login or wrong password)"
                },
            )
        try:
            body = request.json()
            query = str(body.get("query") or "")
            variables = body.get("variables") or {}
        except (ValueError, AttributeError):
            return FakeResponse(400, {"errors": {"query": "Required parameter missing or invalid"}})
        if not re.search(r"\border\s*\(", query):
            return FakeResponse(
                200,
                {
                    "errors": [
                        {
                            "message": "This fake only answers the order(id:) query",
                            "extensions": {"code": "undefinedField"},
                        }
                    ]
                },
            )
        with self.lock:
            available = self._refill()
            if available < ORDER_QUERY_COST:
                return FakeResponse(200, self._throttled(available))
            self._available = available - ORDER_QUERY_COST
            gid = str(variables.get("id") or _inline_id(query) or "")
            match = _ORDER_GID.match(gid)
            if not match:
                return FakeResponse(
                    200,
                    {
                        "errors": [
                            {
                                "message": f"Invalid global id '{gid}'",
                                "locations": [{"line": 2, "column": 3}],
                                "path": ["order"],
                                "extensions": {"code": "argumentLiteralsIncompatible"},
                            }
                        ],
                        "data": None,
                        "extensions": self._cost(ORDER_QUERY_COST, 1),
                    },
                )
            order = self.orders.get(match.group(1))
            data = {"order": None if order is None else self._order_view(order)}
            actual = 1 if order is None else ORDER_QUERY_COST
            self._available += ORDER_QUERY_COST - actual
            return FakeResponse(
                200, {"data": data, "extensions": self._cost(ORDER_QUERY_COST, actual)}
            )

    def _order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        currency = order["currency"]
        return {
            "id": f"gid://shopify/Order/{order['id']}",
            "name": order["name"],
            "currencyCode": currency,
            "displayFinancialStatus": str(order.get("financial_status") or "pending").upper(),
            "totalPriceSet": _money(order["total_price"], currency),
            "totalReceivedSet": _money(order.get("total_received", "0.0"), currency),
            "transactions": [
                {
                    "id": f"gid://shopify/OrderTransaction/{t['id']}",
                    "kind": t["kind"],
                    "status": t["status"],
                    "gateway": t.get("gateway", "bogus"),
                    "processedAt": t.get("processed_at"),
                    "amountSet": _money(t["amount"], t.get("currency", currency)),
                }
                for t in order["transactions"]
            ],
        }

    # -- the bucket

    def _refill(self) -> float:
        now = self._clock()
        self._available = min(
            MAXIMUM_AVAILABLE, self._available + (now - self._refilled_at) * RESTORE_RATE
        )
        self._refilled_at = now
        return self._available

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": MAXIMUM_AVAILABLE,
                    "currentlyAvailable": float(int(self._available)),
                    "restoreRate": RESTORE_RATE,
                },
            }
        }

    def _throttled(self, available: float) -> dict[str, Any]:
        saved = self._available
        self._available = available
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": self._cost(ORDER_QUERY_COST, None),
        }
        self._available = saved
        return body

    # -- control plane

    def seed_order(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Store an order from a Shopify order payload (see the module docstring)."""
        order_id = str(payload["id"])
        currency = str(payload.get("currency") or "USD").upper()
        total = str(payload.get("total_price") or "0.00")
        status = str(payload.get("financial_status") or "pending").lower()
        given = payload.get("transactions")
        if given is None:
            kind = {"paid": "SALE", "authorized": "AUTHORIZATION"}.get(status)
            given = [] if kind is None else [{"kind": kind, "status": "SUCCESS", "amount": total}]
        transactions = []
        for tx in given:
            self._tx_seq += 1
            transactions.append(
                {
                    "id": tx.get("id", self._tx_seq),
                    "kind": str(tx.get("kind", "SALE")).upper(),
                    "status": str(tx.get("status", "SUCCESS")).upper(),
                    "gateway": tx.get("gateway", "bogus"),
                    "amount": str(tx["amount"]),
                    "currency": str(tx.get("currency") or currency).upper(),
                    "processed_at": tx.get("processed_at"),
                }
            )
        received = sum(
            (
                float(t["amount"]) * (-1 if t["kind"] == "REFUND" else 1)
                for t in transactions
                if t["status"] == "SUCCESS" and t["kind"] in ("SALE", "CAPTURE", "REFUND")
            ),
            0.0,
        )
        order = {
            "id": order_id,
            "name": str(payload.get("name") or f"#{order_id}"),
            "currency": currency,
            "total_price": total,
            "financial_status": status,
            "total_received": f"{received:.2f}",
            "transactions": transactions,
        }
        with self.lock:
            self.orders[order_id] = order
        return order

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        if parts == ["orders"] and request.method == "POST":
            return FakeResponse(200, {"order": self.seed_order(request.json())})
        if parts == ["bucket"] and request.method == "POST":
            with self.lock:
                self._refill()
                self._available = float(request.json().get("currentlyAvailable", MAXIMUM_AVAILABLE))
                return FakeResponse(200, {"currentlyAvailable": self._available})
        return None

    def state(self) -> dict[str, Any]:
        return {"orders": dict(self.orders), "currently_available": self._available}

    def reset_state(self) -> None:
        self.orders.clear()
        self._available = MAXIMUM_AVAILABLE
        self._refilled_at = self._clock()


def _inline_id(query: str) -> str | None:
    match = re.search(r'order\s*\(\s*id\s*:\s*"([^"]+)"', query)
    return match.group(1) if match else None
