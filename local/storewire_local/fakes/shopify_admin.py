"""A local Shopify Admin GraphQL API: orders (transactions, fulfillment orders, fulfillments)
and inventory (items, levels per location), with cost throttling.

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token`` (from
``SHOPIFY_ADMIN_TOKEN``, development default ``shpat_storewire_dev_token``) and a JSON body
``{"query", "variables"}``. A tiny query matcher answers, in Shopify's response shapes (with
``extensions.cost``):

* ``order(id: $id)``: any selection of ``id name currencyCode displayFinancialStatus
  displayFulfillmentStatus totalPriceSet totalReceivedSet transactions fulfillments
  fulfillmentOrders`` (the fake answers them all);
* ``inventoryItem(id:) { inventoryLevel(locationId:) { quantities(names: ["available"]) } }``
  and ``inventoryLevel(id:)``;
* ``inventorySetQuantities(input:) @idempotent(key:)``: compare-and-set on
  ``changeFromQuantity`` (``CHANGE_FROM_QUANTITY_STALE``, nothing changed), all or nothing;
  the same key with the same input replays the first answer; from API version 2026-04 the
  directive and ``changeFromQuantity`` are required;
* ``orders(first:, after:, query: "updated_at:>'…'", sortKey: UPDATED_AT)``: the seeded
  orders updated after the time, oldest update first, as ``edges { cursor node { id
  legacyResourceId updatedAt } }`` and ``pageInfo { hasNextPage endCursor }``; requested cost
  ``first + 2`` (for reconciliation);
* ``GET /admin/api/{version}/orders/{id}.json`` (REST): ``{"order": ...}``, the payload the
  order was seeded with (the webhook JSON, as Shopify's REST order is);
* ``fulfillmentCreate(fulfillment:)``: closes the fulfillment orders and records the
  fulfillment with its ``trackingInfo``; a closed fulfillment order is refused (userErrors).

Throttling is Shopify's leaky bucket: each query takes its requested cost from the bucket
(refilled at ``restoreRate`` points a second); a query that does not fit is answered
``{"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}`` with the
cost extensions (HTTP 200, as Shopify does). The fault ``{"mode": "throttle"}`` forces it.

Control plane: ``POST /_fake/orders`` seeds an order, either a Shopify REST/webhook order
payload (``id``, ``name``, ``currency``, ``total_price``, ``financial_status``,
``line_items``, optional ``location_id``) or that plus ``transactions`` ``[{"kind": "SALE",
"status": "SUCCESS", "amount": "10.00", "gateway"}]``. Without transactions, ``paid`` gets one
successful SALE of the total, ``authorized`` one AUTHORIZATION, ``pending`` none. The line
items that require shipping make one OPEN fulfillment order. ``POST /_fake/inventory``
``{"inventory_item_id", "location_id", "available", "sku"?}`` seeds (or changes, behind the
client's back) a level. ``POST /_fake/bucket`` ``{"currentlyAvailable": 0}`` sets the bucket.
``GET /_fake/state``: ``orders``, ``inventory``, ``adjustments`` (every applied change) and
``refusals`` (every inventory userError). See docs/channels.md.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from .base import FakeRequest, FakeResponse, FakeServer

DEFAULT_ADMIN_TOKEN = "shpat_storewire_dev_token"  # noqa: S105 - the public dev default
MAXIMUM_AVAILABLE = 2000.0
RESTORE_RATE = 100.0
ORDER_QUERY_COST = 3
"""Requested cost of the order query: the order (1) + the transactions list (2)."""

MUTATION_COST = 10
INVENTORY_QUERY_COST = 2
DEFAULT_LOCATION_GID = "gid://shopify/Location/1"
STALE_CODE = "CHANGE_FROM_QUANTITY_STALE"

_GRAPHQL_PATH = re.compile(r"^/admin/api/[0-9]{4}-[0-9]{2}/graphql\.json$")
_VERSION = re.compile(r"^/admin/api/([0-9]{4}-[0-9]{2})/")
_INVENTORY_ITEM_GID = re.compile(r"^gid://shopify/InventoryItem/[0-9]+$")
_LOCATION_GID = re.compile(r"^gid://shopify/Location/[0-9]+$")
_LEVEL_GID = re.compile(r"^gid://shopify/InventoryLevel/([0-9]+)\?inventory_item_id=([0-9]+)$")
_ORDER_GID = re.compile(r"^gid://shopify/Order/([0-9]+)$")
_REST_ORDER_PATH = re.compile(r"^/admin/api/[0-9]{4}-[0-9]{2}/orders/([0-9]+)\.json$")
_UPDATED_SINCE = re.compile(r"updated_at:>'?([0-9T:.+\-Z]+)'?")


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
        self._seq = 5_000_000
        self.inventory: dict[str, dict[str, Any]] = {}
        """inventory item gid -> {"id", "sku", "levels": {location gid: available}}"""
        self.idempotency: dict[str, dict[str, Any]] = {}
        """@idempotent key -> {"fingerprint", "body"}: the first answer, replayed"""
        self.adjustments: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []
        """Every inventorySetQuantities userError answered (e.g. CHANGE_FROM_QUANTITY_STALE)."""
        """Every applied inventory change: {"inventory_item_id", "location_id", "delta",
        "quantity_after", "reference", "key"}"""

    # -- faults in Shopify's shapes

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        return FakeResponse(status, {"errors": "Internal Server Error"})

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        if request.path.startswith("/admin/"):
            return FakeResponse(200, self._throttled(0.0))
        return FakeResponse(429, {"errors": "Exceeded 2 calls per second for api client."})

    # -- the API

    def handle(self, request: FakeRequest) -> FakeResponse:
        rest = _REST_ORDER_PATH.match(request.path)
        if rest and request.method == "GET":
            return self._rest_order(request, rest.group(1))
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
        version = _version(request.path)
        if "inventorySetQuantities" in query:
            return self._metered(
                MUTATION_COST, lambda: self._set_quantities(query, variables, version)
            )
        if "fulfillmentCreate" in query:
            return self._metered(MUTATION_COST, lambda: self._fulfillment_create(variables))
        if re.search(r"\borders\s*\(", query):
            first = max(1, min(250, int(variables.get("first") or 50)))
            return self._metered(first + 2, lambda: self._orders_connection(variables, first))
        if re.search(r"\binventoryItem\s*\(", query):
            return self._metered(
                INVENTORY_QUERY_COST, lambda: self._inventory_item(query, variables)
            )
        if re.search(r"\binventoryLevel\s*\(\s*id\s*:", query):
            return self._metered(
                INVENTORY_QUERY_COST, lambda: self._inventory_level(query, variables)
            )
        if not re.search(r"\border\s*\(", query):
            return FakeResponse(
                200,
                {
                    "errors": [
                        {
                            "message": "This fake answers order(id:), inventoryItem(id:), "
                            "inventoryLevel(id:), inventorySetQuantities and fulfillmentCreate",
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

    def _metered(self, cost: int, answer: Any) -> FakeResponse:
        """Take `cost` points from the bucket (or answer THROTTLED) and answer `data`."""
        with self.lock:
            available = self._refill()
            if available < cost:
                return FakeResponse(200, self._throttled(available, cost))
            self._available = available - cost
            body = answer()
            body.setdefault("extensions", self._cost(cost, cost))
            return FakeResponse(200, body)

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
            "displayFulfillmentStatus": _fulfillment_status(order),
            "fulfillments": [dict(f["view"]) for f in order.get("fulfillments", [])],
            "fulfillmentOrders": {
                "nodes": [_fulfillment_order_view(fo) for fo in order.get("fulfillment_orders", [])]
            },
        }

    # -- orders: the connection (reconciliation) and the REST order JSON

    def _orders_connection(self, variables: dict[str, Any], first: int) -> dict[str, Any]:
        """``orders(first:, after:, query: "updated_at:>'…'", sortKey: UPDATED_AT)``: edges
        of ``{id, legacyResourceId, updatedAt}`` sorted by (updatedAt, id), cursor = the index
        in that order of the last edge (opaque to clients), ``pageInfo``."""
        since = _updated_since(str(variables.get("query") or ""))
        rows = sorted(
            (
                (_parse_time(order["updated_at"]), int(order["id"]), order)
                for order in self.orders.values()
                if order.get("updated_at")
            ),
            key=lambda row: (row[0], row[1]),
        )
        if since is not None:
            rows = [row for row in rows if row[0] > since]
        after = variables.get("after")
        start = 0
        if after:
            try:
                start = int(str(after).removeprefix("cursor:")) + 1
            except ValueError:
                return {"errors": [_top_error("Invalid cursor", "argumentLiteralsIncompatible")]}
        page = rows[start : start + first]
        edges = [
            {
                "cursor": f"cursor:{start + index}",
                "node": {
                    "id": f"gid://shopify/Order/{order['id']}",
                    "legacyResourceId": str(order["id"]),
                    "updatedAt": order["updated_at"],
                },
            }
            for index, (_, _, order) in enumerate(page)
        ]
        return {
            "data": {
                "orders": {
                    "edges": edges,
                    "pageInfo": {
                        "hasNextPage": start + first < len(rows),
                        "endCursor": edges[-1]["cursor"] if edges else None,
                    },
                }
            }
        }

    def _rest_order(self, request: FakeRequest, order_id: str) -> FakeResponse:
        """``GET /admin/api/{version}/orders/{id}.json``: ``{"order": <webhook JSON>}``."""
        token = request.header("x-shopify-access-token")
        if not token or not hmac.compare_digest(token, self.access_token):
            return FakeResponse(401, {"errors": "[API] Invalid API key or access token"})
        with self.lock:
            order = self.orders.get(order_id)
            if order is None or "payload" not in order:
                return FakeResponse(404, {"errors": "Not Found"})
            return FakeResponse(200, {"order": dict(order["payload"])})

    # -- inventory

    def set_level(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Seed or overwrite (behind Storewire's back) `available` of an item at a location:
        ``{"inventory_item_id", "location_id", "available", "sku"?}``."""
        item_id = str(spec["inventory_item_id"])
        location_id = str(spec["location_id"])
        if not _INVENTORY_ITEM_GID.match(item_id) or not _LOCATION_GID.match(location_id):
            raise ValueError("inventory_item_id / location_id must be Shopify gids")
        with self.lock:
            item = self.inventory.setdefault(item_id, {"id": item_id, "sku": None, "levels": {}})
            if spec.get("sku") is not None:
                item["sku"] = str(spec["sku"])
            item["levels"][location_id] = int(spec.get("available", 0))
            return json.loads(json.dumps(item))

    def available(self, inventory_item_id: str, location_id: str) -> int | None:
        with self.lock:
            item = self.inventory.get(inventory_item_id)
            return None if item is None else item["levels"].get(location_id)

    def _level_view(self, item: dict[str, Any], location_id: str) -> dict[str, Any] | None:
        if location_id not in item["levels"]:
            return None
        return {
            "id": _level_gid(item["id"], location_id),
            "location": {"id": location_id},
            "item": {"id": item["id"], "sku": item["sku"]},
            "quantities": [{"name": "available", "quantity": item["levels"][location_id]}],
        }

    def _inventory_item(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        item_id = str(variables.get("itemId") or variables.get("id") or "")
        location_id = str(variables.get("locationId") or "")
        item = self.inventory.get(item_id)
        if item is None:
            return {"data": {"inventoryItem": None}}
        view: dict[str, Any] = {"id": item["id"], "sku": item["sku"]}
        if "inventoryLevel" in query:
            view["inventoryLevel"] = self._level_view(item, location_id)
        return {"data": {"inventoryItem": view}}

    def _inventory_level(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        gid = str(variables.get("id") or "")
        match = _LEVEL_GID.match(gid)
        if not match:
            return {"data": {"inventoryLevel": None}}
        location_id = f"gid://shopify/Location/{match.group(1)}"
        item = self.inventory.get(f"gid://shopify/InventoryItem/{match.group(2)}")
        view = None if item is None else self._level_view(item, location_id)
        return {"data": {"inventoryLevel": view}}

    def _set_quantities(
        self, query: str, variables: dict[str, Any], version: str
    ) -> dict[str, Any]:
        key = _idempotency_key(query, variables)
        if key is None and version >= "2026-04":
            return _top_error(
                "The @idempotent directive is required for this mutation.", "BAD_REQUEST"
            )
        spec = _variable(variables, "input", "quantities")
        if spec is None:
            return _top_error("This fake reads the input from the $input variable", "BAD_REQUEST")
        fingerprint = json.dumps(spec, sort_keys=True)
        if key is not None and key in self.idempotency:
            first = self.idempotency[key]
            if first["fingerprint"] != fingerprint:
                return _top_error(
                    "The idempotency key was already used with other arguments",
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                )
            return json.loads(json.dumps(first["body"]))
        body = {"data": {"inventorySetQuantities": self._apply_set(spec, version, key)}}
        if key is not None:
            self.idempotency[key] = {"fingerprint": fingerprint, "body": body}
        return json.loads(json.dumps(body))

    def _apply_set(self, spec: dict[str, Any], version: str, key: str | None) -> dict[str, Any]:
        """All or nothing: every quantity is checked before any is changed."""
        errors: list[dict[str, Any]] = []
        name = spec.get("name")
        if name != "available":
            errors.append(_user_error(["input", "name"], "INVALID_NAME", f"not supported: {name}"))
        if not spec.get("reason"):
            errors.append(_user_error(["input", "reason"], "INVALID_REASON", "reason is required"))
        quantities = spec.get("quantities") or []
        if not quantities:
            errors.append(
                _user_error(["input", "quantities"], "INVALID_QUANTITY", "quantities is empty")
            )
        changes: list[tuple[dict[str, Any], str, int, int]] = []
        for index, q in enumerate(quantities):
            field = ["input", "quantities", str(index)]
            item = self.inventory.get(str(q.get("inventoryItemId")))
            if item is None:
                errors.append(
                    _user_error(
                        [*field, "inventoryItemId"],
                        "INVALID_INVENTORY_ITEM",
                        "The specified inventory item could not be found.",
                    )
                )
                continue
            location_id = str(q.get("locationId"))
            if location_id not in item["levels"]:
                errors.append(
                    _user_error(
                        [*field, "locationId"],
                        "ITEM_NOT_STOCKED_AT_LOCATION",
                        "The specified inventory item is not stocked at the location.",
                    )
                )
                continue
            if version >= "2026-04" and "changeFromQuantity" not in q:
                errors.append(
                    _user_error(
                        [*field, "changeFromQuantity"],
                        "INVALID_QUANTITY",
                        "changeFromQuantity must be given (null opts out of the compare).",
                    )
                )
                continue
            current = int(item["levels"][location_id])
            compare = q.get("changeFromQuantity", q.get("compareQuantity"))
            if compare is not None and int(compare) != current:
                errors.append(
                    _user_error(
                        [*field, "changeFromQuantity"],
                        STALE_CODE,
                        "The specified compare quantity does not match the current quantity.",
                    )
                )
                continue
            changes.append((item, location_id, current, int(q["quantity"])))
        if errors:
            self.refusals.extend({**e, "key": key} for e in errors)
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        group = self._gid("InventoryAdjustmentGroup")
        applied = []
        for item, location_id, before, after in changes:
            item["levels"][location_id] = after
            applied.append(
                {"name": "available", "delta": after - before, "quantityAfterChange": after}
            )
            self.adjustments.append(
                {
                    "inventory_item_id": item["id"],
                    "location_id": location_id,
                    "delta": after - before,
                    "quantity_after": after,
                    "reference": spec.get("referenceDocumentUri"),
                    "key": key,
                }
            )
        return {
            "inventoryAdjustmentGroup": {
                "id": group,
                "reason": spec.get("reason"),
                "referenceDocumentUri": spec.get("referenceDocumentUri"),
                "changes": applied,
            },
            "userErrors": [],
        }

    # -- fulfilment

    def _fulfillment_create(self, variables: dict[str, Any]) -> dict[str, Any]:
        spec = _variable(variables, "fulfillment", "lineItemsByFulfillmentOrder")
        if spec is None:
            return _top_error("This fake reads the fulfillment from variables", "BAD_REQUEST")
        pairs = spec.get("lineItemsByFulfillmentOrder") or []

        def refused(field: list[str], message: str) -> dict[str, Any]:
            error = {"field": field, "message": message}
            return {"data": {"fulfillmentCreate": {"fulfillment": None, "userErrors": [error]}}}

        if not pairs:
            return refused(
                ["fulfillment", "lineItemsByFulfillmentOrder"],
                "lineItemsByFulfillmentOrder must have at least one fulfillment order",
            )
        found: list[tuple[dict[str, Any], dict[str, Any], dict[str, int]]] = []
        for pair in pairs:
            fo_id = str(pair.get("fulfillmentOrderId"))
            hit = self._find_fulfillment_order(fo_id)
            if hit is None:
                return refused(
                    ["fulfillment", "lineItemsByFulfillmentOrder"],
                    f"Fulfillment order {fo_id} does not exist.",
                )
            order, fo = hit
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                return refused(
                    ["fulfillment"],
                    f"Fulfillment order {fo_id} has an unfulfillable status= "
                    f"{fo['status'].lower()}.",
                )
            wanted = {
                str(li["id"]): int(li["quantity"])
                for li in pair.get("fulfillmentOrderLineItems") or []
            }
            found.append((order, fo, wanted))
        orders = {id(order) for order, _, _ in found}
        if len(orders) != 1:
            return refused(["fulfillment"], "Fulfillment orders must belong to the same order.")
        if len({fo["location_id"] for _, fo, _ in found}) != 1:
            return refused(
                ["fulfillment"], "Fulfillment orders must be assigned to the same location."
            )
        order = found[0][0]
        lines = []
        for _, fo, wanted in found:
            for li in fo["line_items"]:
                quantity = wanted.get(li["id"], li["remaining"]) if wanted else li["remaining"]
                quantity = min(quantity, li["remaining"])
                li["remaining"] -= quantity
                if quantity:
                    lines.append({"id": li["line_item_id"], "sku": li["sku"], "quantity": quantity})
            fo["status"] = (
                "CLOSED" if all(li["remaining"] == 0 for li in fo["line_items"]) else "IN_PROGRESS"
            )
        tracking = spec.get("trackingInfo") or {}
        numbers = tracking.get("numbers") or (
            [tracking["number"]] if tracking.get("number") else []
        )
        urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
        view = {
            "id": self._gid("Fulfillment"),
            "status": "SUCCESS",
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "trackingInfo": [
                {
                    "company": tracking.get("company"),
                    "number": number,
                    "url": urls[i] if i < len(urls) else None,
                }
                for i, number in enumerate(numbers)
            ],
        }
        order["fulfillments"].append(
            {
                "view": view,
                "fulfillment_order_ids": [fo["id"] for _, fo, _ in found],
                "line_items": lines,
                "notify_customer": bool(spec.get("notifyCustomer", False)),
            }
        )
        return {"data": {"fulfillmentCreate": {"fulfillment": dict(view), "userErrors": []}}}

    def _find_fulfillment_order(self, fo_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for order in self.orders.values():
            for fo in order.get("fulfillment_orders", []):
                if fo["id"] == fo_id:
                    return order, fo
        return None

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

    def _throttled(self, available: float, cost: int = ORDER_QUERY_COST) -> dict[str, Any]:
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
            "extensions": self._cost(cost, None),
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
        with self.lock:
            order = {
                "id": order_id,
                "name": str(payload.get("name") or f"#{order_id}"),
                "currency": currency,
                "total_price": total,
                "financial_status": status,
                "total_received": f"{received:.2f}",
                "transactions": transactions,
                "fulfillment_orders": self._fulfillment_orders(payload),
                "fulfillments": [],
                "updated_at": str(payload.get("updated_at") or payload.get("created_at") or ""),
                "payload": dict(payload),
            }
            self.orders[order_id] = order
        return order

    def _fulfillment_orders(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """One OPEN fulfillment order at `location_id` (default `gid://shopify/Location/1`)
        with the order's lines that require shipping (none: no fulfillment order)."""
        lines = [
            line
            for line in payload.get("line_items") or []
            if line.get("requires_shipping", True) and int(line.get("quantity") or 0) > 0
        ]
        if not lines:
            return []
        location = str(payload.get("location_id") or DEFAULT_LOCATION_GID)
        return [
            {
                "id": self._gid("FulfillmentOrder"),
                "status": "OPEN",
                "location_id": location,
                "line_items": [
                    {
                        "id": self._gid("FulfillmentOrderLineItem"),
                        "line_item_id": f"gid://shopify/LineItem/{line.get('id')}",
                        "sku": line.get("sku"),
                        "total": int(line.get("quantity") or 0),
                        "remaining": int(line.get("quantity") or 0),
                    }
                    for line in lines
                ],
            }
        ]

    def _gid(self, kind: str) -> str:
        self._seq += 1
        return f"gid://shopify/{kind}/{self._seq}"

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        if parts == ["orders"] and request.method == "POST":
            return FakeResponse(200, {"order": self.seed_order(request.json())})
        if parts == ["inventory"] and request.method == "POST":
            return FakeResponse(200, {"inventory_item": self.set_level(request.json())})
        if parts == ["bucket"] and request.method == "POST":
            with self.lock:
                self._refill()
                self._available = float(request.json().get("currentlyAvailable", MAXIMUM_AVAILABLE))
                return FakeResponse(200, {"currentlyAvailable": self._available})
        return None

    def state(self) -> dict[str, Any]:
        return {
            "orders": dict(self.orders),
            "inventory": dict(self.inventory),
            "adjustments": list(self.adjustments),
            "refusals": list(self.refusals),
            "currently_available": self._available,
        }

    def reset_state(self) -> None:
        self.orders.clear()
        self.inventory.clear()
        self.idempotency.clear()
        self.adjustments.clear()
        self.refusals.clear()
        self._available = MAXIMUM_AVAILABLE
        self._refilled_at = self._clock()


def _inline_id(query: str) -> str | None:
    match = re.search(r'order\s*\(\s*id\s*:\s*"([^"]+)"', query)
    return match.group(1) if match else None


def _version(path: str) -> str:
    match = _VERSION.match(path)
    return match.group(1) if match else ""


def _idempotency_key(query: str, variables: dict[str, Any]) -> str | None:
    """The `@idempotent(key:)` of a mutation: a literal or a `$variable`."""
    match = re.search(r'@idempotent\s*\(\s*key\s*:\s*(?:"([^"]*)"|\$(\w+))\s*\)', query)
    if not match:
        return None
    if match.group(1) is not None:
        return match.group(1)
    value = variables.get(match.group(2))
    return None if value is None else str(value)


def _level_gid(item_id: str, location_id: str) -> str:
    return (
        f"gid://shopify/InventoryLevel/{location_id.rsplit('/', 1)[-1]}"
        f"?inventory_item_id={item_id.rsplit('/', 1)[-1]}"
    )


def _top_error(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}


def _user_error(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"field": field, "code": code, "message": message}


def _fulfillment_order_view(fo: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": fo["id"],
        "status": fo["status"],
        "requestStatus": "UNSUBMITTED",
        "assignedLocation": {"location": {"id": fo["location_id"]}},
        "lineItems": {
            "nodes": [
                {
                    "id": li["id"],
                    "totalQuantity": li["total"],
                    "remainingQuantity": li["remaining"],
                    "lineItem": {"id": li["line_item_id"], "sku": li["sku"]},
                }
                for li in fo["line_items"]
            ]
        },
    }


def _fulfillment_status(order: dict[str, Any]) -> str:
    fos = order.get("fulfillment_orders") or []
    if not order.get("fulfillments"):
        return "UNFULFILLED"
    if all(fo["status"] == "CLOSED" for fo in fos):
        return "FULFILLED"
    return "PARTIALLY_FULFILLED"


def _variable(variables: dict[str, Any], name: str, marker: str) -> dict[str, Any] | None:
    """The input object of a mutation: the variable `name`, or any carrying `marker`."""
    value = variables.get(name)
    if isinstance(value, dict):
        return value
    for value in variables.values():
        if isinstance(value, dict) and marker in value:
            return value
    return None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _updated_since(query: str) -> datetime | None:
    """The time of an ``updated_at:>'…'`` search term (the only one this fake honours)."""
    match = _UPDATED_SINCE.search(query)
    return _parse_time(match.group(1)) if match else None
