"""A local HubSpot CRM: contacts, deals and associations over HubSpot's real shapes.

Auth: a private app access token as ``Authorization: Bearer <token>`` (``HUBSPOT_ACCESS_TOKEN``,
development default ``pat-na1-storewire-dev``); anything else is HubSpot's 401
``{"status": "error", "message": ..., "correlationId", "category": "INVALID_AUTHENTICATION"}``.

API:

* ``POST /crm/v3/objects/{contacts|deals}/batch/upsert`` ``{"inputs": [{"idProperty", "id",
  "properties", "objectWriteTraceId"?}]}`` (1 to 100 inputs). Contacts upsert on
  ``email`` (case-insensitive), deals on the unique property ``storewire_order_id``; another
  ``idProperty`` is a 400 ``VALIDATION_ERROR``, as is a missing ``inputs``/``id``/
  ``properties`` or a duplicate id in one batch. Answer: ``{"status": "COMPLETE", "results":
  [{"id", "properties", "createdAt", "updatedAt", "archived": false, "new",
  "objectWriteTraceId"?}], "startedAt", "completedAt"}``. An invalid email (or a non-numeric
  ``amount``) refuses only its input: the answer is then ``207`` with ``errors[]`` in
  HubSpot's shape (``{"status": "error", "category": "VALIDATION_ERROR", "message",
  "context": {"objectWriteTraceId": [...], "ids": [...]}, "errors": [{"message", "code":
  "INVALID_EMAIL", "in": "email"}]}``) and ``numErrors``.
* ``GET /crm/v3/objects/{contacts|deals}/{id}`` (``?idProperty=email`` or
  ``storewire_order_id`` to look up by the unique value), 404 ``OBJECT_NOT_FOUND`` otherwise.
* ``DELETE /crm/v3/objects/contacts/{id}``: archive (204); an archived contact is not found
  and a later upsert of its email creates a new one.
* ``POST /crm/v3/objects/contacts/gdpr-delete`` ``{"objectId", "idProperty"?}`` (``email`` or
  the id): permanently deletes the contact and its associations (204); archived contacts
  included. Nothing to delete is HubSpot's 404 ``OBJECT_NOT_FOUND``.
* ``POST /crm/v4/associations/deals/contacts/batch/associate/default`` ``{"inputs": [{"from":
  {"id"}, "to": {"id"}}]}`` and ``PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/
  {toId}``: the default association (deal -> contact type 3, contact -> deal type 4);
  ``GET /crm/v4/objects/{from}/{id}/associations/{to}`` lists them.

Rate limit: a sliding window of 190 requests per 10 seconds (the per-app burst limit of a
paid portal); over it, ``429`` ``{"status": "error", "message": "You have reached your
ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "correlationId", "policyName":
"TEN_SECONDLY_ROLLING", "requestId"}`` with ``Retry-After`` (seconds until the window has
room). Every answer carries ``X-HubSpot-RateLimit-Max``, ``-Remaining`` and
``-Interval-Milliseconds``.

Control plane (besides the faults of `FakeServer`: 5xx, 429 + Retry-After, slow, drop):
``POST /_fake/rate_limit`` ``{"max": 190, "window_seconds": 10}``; ``GET /_fake/state``
shows contacts, deals and associations.
"""

from __future__ import annotations

import hmac
import itertools
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, unquote

from .base import FakeRequest, FakeResponse, FakeServer

DEFAULT_ACCESS_TOKEN = "pat-na1-storewire-dev"  # noqa: S105 - the public dev default
RATE_LIMIT_MAX = 190
RATE_LIMIT_WINDOW_SECONDS = 10.0
MAX_BATCH_INPUTS = 100
UNIQUE_PROPERTIES = {"contacts": "email", "deals": "storewire_order_id"}
ASSOCIATION_TYPES = {("deals", "contacts"): 3, ("contacts", "deals"): 4}

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
_UPSERT = re.compile(r"^/crm/v3/objects/(contacts|deals)/batch/upsert$")
_OBJECT = re.compile(r"^/crm/v3/objects/(contacts|deals)/([^/]+)$")
_ASSOC_BATCH = re.compile(r"^/crm/v4/associations/(\w+)/(\w+)/batch/associate/default$")
_ASSOC_PUT = re.compile(r"^/crm/v4/objects/(\w+)/([^/]+)/associations/default/(\w+)/([^/]+)$")
_ASSOC_GET = re.compile(r"^/crm/v4/objects/(\w+)/([^/]+)/associations/(\w+)$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str, category: str, **extra: Any) -> FakeResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return FakeResponse(status, body)


class HubSpotFake(FakeServer):
    name = "hubspot"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        clock: Callable[[], float] = time.monotonic,
        rate_limit: int = RATE_LIMIT_MAX,
        window_seconds: float = RATE_LIMIT_WINDOW_SECONDS,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self._clock = clock
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self._window: deque[float] = deque()
        self._ids = itertools.count(1001)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}}
        self.associations: set[tuple[str, str, str, str]] = set()
        self.throttled = 0

    # -- faults in HubSpot's shapes

    def error_response(self, status: int, request: FakeRequest) -> FakeResponse:
        return _error(status, "internal error", "INTERNAL_ERROR")

    def throttled_response(self, request: FakeRequest) -> FakeResponse:
        self.throttled += 1
        return FakeResponse(
            429,
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
                "requestId": str(uuid.uuid4()),
            },
            {"Retry-After": "1", **self._limit_headers(0)},
        )

    # -- the rate limit (sliding window)

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, remaining)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
        }

    def _admit(self) -> tuple[bool, int, float]:
        """(admitted, remaining, seconds until there is room) for one request now."""
        now = self._clock()
        while self._window and self._window[0] <= now - self.window_seconds:
            self._window.popleft()
        if len(self._window) >= self.rate_limit:
            wait = self._window[0] + self.window_seconds - now
            return False, 0, max(wait, 0.001)
        self._window.append(now)
        return True, self.rate_limit - len(self._window), 0.0

    # -- the API

    def handle(self, request: FakeRequest) -> FakeResponse:
        token = request.header("authorization")
        scheme, _, value = token.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value, self.access_token):
            return _error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        with self.lock:
            admitted, remaining, wait = self._admit()
            if not admitted:
                response = self.throttled_response(request)
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return response
            response = self._route(request)
            response.headers.update(self._limit_headers(remaining))
            return response

    def _route(self, request: FakeRequest) -> FakeResponse:
        path, method = request.path, request.method
        if (match := _UPSERT.match(path)) and method == "POST":
            return self._batch_upsert(match.group(1), request)
        if (match := _ASSOC_BATCH.match(path)) and method == "POST":
            return self._associate_batch(match.group(1), match.group(2), request)
        if (match := _ASSOC_PUT.match(path)) and method == "PUT":
            frm, from_id, to, to_id = match.groups()
            return self._associate_one(frm, unquote(from_id), to, unquote(to_id))
        if (match := _ASSOC_GET.match(path)) and method == "GET":
            return self._list_associations(match.group(1), unquote(match.group(2)), match.group(3))
        if path == "/crm/v3/objects/contacts/gdpr-delete" and method == "POST":
            return self._gdpr_delete(request)
        if match := _OBJECT.match(path):
            object_type, ident = match.group(1), unquote(match.group(2))
            query = parse_qs(request.query)
            id_property = (query.get("idProperty") or [None])[0]
            if method == "GET":
                found = self._find(object_type, ident, id_property)
                if found is None:
                    return _error(404, "Object not found.", "OBJECT_NOT_FOUND")
                return FakeResponse(200, self._view(found))
            if method == "DELETE" and object_type == "contacts":
                found = self._find(object_type, ident, None)
                if found is not None:
                    found["archived"] = True
                    found["archivedAt"] = _now_iso()
                return FakeResponse(204, None)
        return _error(404, f"Unable to infer object type from: {path}", "OBJECT_NOT_FOUND")

    def _gdpr_delete(self, request: FakeRequest) -> FakeResponse:
        body = request.json()
        if not isinstance(body, dict) or not body.get("objectId"):
            return _error(400, "objectId is required", "VALIDATION_ERROR")
        ident = str(body["objectId"])
        id_property = body.get("idProperty")
        contacts = self.objects["contacts"]
        if id_property == "email":
            doomed = [
                key
                for key, obj in contacts.items()
                if str(obj["properties"].get("email") or "").lower() == ident.lower()
            ]
        elif id_property in (None, "", "hs_object_id"):
            doomed = [ident] if ident in contacts else []
        else:
            return _error(400, f"unsupported idProperty {id_property}", "VALIDATION_ERROR")
        if not doomed:
            return _error(404, "Object not found.", "OBJECT_NOT_FOUND")
        for key in doomed:
            del contacts[key]
            self.associations = {
                a for a in self.associations if not (a[0] == "contacts" and a[1] == key)
                and not (a[2] == "contacts" and a[3] == key)
            }  # fmt: skip
        return FakeResponse(204, None)

    # -- objects

    def _find(self, object_type: str, ident: str, id_property: str | None) -> dict[str, Any] | None:
        store = self.objects[object_type]
        if id_property:
            if id_property != UNIQUE_PROPERTIES[object_type]:
                return None
            return self._by_unique(object_type, ident)
        found = store.get(ident)
        return None if found is None or found["archived"] else found

    def _by_unique(self, object_type: str, value: str) -> dict[str, Any] | None:
        unique = UNIQUE_PROPERTIES[object_type]
        wanted = value.lower() if object_type == "contacts" else value
        for obj in self.objects[object_type].values():
            current = str(obj["properties"].get(unique) or "")
            if (
                not obj["archived"]
                and (current.lower() if object_type == "contacts" else current) == wanted
            ):
                return obj
        return None

    def _view(self, obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
        view = {
            "id": obj["id"],
            "properties": dict(obj["properties"]),
            "createdAt": obj["createdAt"],
            "updatedAt": obj["updatedAt"],
            "archived": obj["archived"],
        }
        view.update(extra)
        return view

    def _batch_upsert(self, object_type: str, request: FakeRequest) -> FakeResponse:
        started = _now_iso()
        try:
            body = request.json()
        except ValueError:
            return _error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "Invalid input JSON: 'inputs' is required", "VALIDATION_ERROR")
        if len(inputs) > MAX_BATCH_INPUTS:
            return _error(
                400,
                f"Batch input limit exceeded: {len(inputs)} > {MAX_BATCH_INPUTS}",
                "VALIDATION_ERROR",
            )
        unique = UNIQUE_PROPERTIES[object_type]
        seen: set[str] = set()
        for item in inputs:
            if not isinstance(item, dict) or not item.get("id") or "properties" not in item:
                return _error(
                    400,
                    "Invalid input JSON: each input needs 'id' and 'properties'",
                    "VALIDATION_ERROR",
                )
            if (item.get("idProperty") or unique) != unique:
                return _error(
                    400,
                    f'Property "{item.get("idProperty")}" is not a unique identifier '
                    f"property for {object_type}",
                    "VALIDATION_ERROR",
                )
            key = str(item["id"]).lower() if object_type == "contacts" else str(item["id"])
            if key in seen:
                return _error(400, "Duplicate IDs found in batch input", "VALIDATION_ERROR")
            seen.add(key)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            problem = self._invalid(object_type, item)
            if problem is not None:
                errors.append(problem)
                continue
            results.append(self._upsert_one(object_type, item))
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if errors:
            answer["errors"] = errors
            answer["numErrors"] = len(errors)
        return FakeResponse(207 if errors else 200, answer)

    def _invalid(self, object_type: str, item: dict[str, Any]) -> dict[str, Any] | None:
        ident = str(item["id"])
        props = item.get("properties") or {}
        trace = item.get("objectWriteTraceId")
        if object_type == "contacts":
            email = str(props.get("email") or ident)
            if not _EMAIL.match(ident) or not _EMAIL.match(email):
                return self._input_error(
                    ident, trace, f"Email address {ident} is invalid", "INVALID_EMAIL", "email"
                )
        amount = props.get("amount")
        if object_type == "deals" and amount not in (None, ""):
            try:
                Decimal(str(amount))
            except InvalidOperation:
                return self._input_error(
                    ident, trace, f"{amount} was not a valid number.", "INVALID_DECIMAL", "amount"
                )
        return None

    def _input_error(
        self, ident: str, trace: Any, message: str, code: str, where: str
    ) -> dict[str, Any]:
        context: dict[str, list[str]] = {"ids": [ident]}
        if trace is not None:
            context["objectWriteTraceId"] = [str(trace)]
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid",
            "context": context,
            "errors": [{"message": message, "code": code, "in": where}],
        }

    def _upsert_one(self, object_type: str, item: dict[str, Any]) -> dict[str, Any]:
        unique = UNIQUE_PROPERTIES[object_type]
        ident = str(item["id"])
        props = {str(k): "" if v is None else str(v) for k, v in item["properties"].items()}
        existing = self._by_unique(object_type, ident)
        now = _now_iso()
        if existing is None:
            object_id = str(next(self._ids))
            stored_id = ident.lower() if object_type == "contacts" else ident
            existing = {
                "id": object_id,
                "properties": {unique: stored_id, "hs_object_id": object_id},
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
            }
            self.objects[object_type][object_id] = existing
            new = True
        else:
            new = False
        props.pop(unique, None)
        existing["properties"].update(props)
        existing["updatedAt"] = now
        extra: dict[str, Any] = {"new": new}
        if item.get("objectWriteTraceId") is not None:
            extra["objectWriteTraceId"] = str(item["objectWriteTraceId"])
        return self._view(existing, **extra)

    # -- associations

    def _exists(self, object_type: str, object_id: str) -> bool:
        store = self.objects.get(object_type)
        return store is not None and object_id in store and not store[object_id]["archived"]

    def _associate_batch(self, frm: str, to: str, request: FakeRequest) -> FakeResponse:
        if (frm, to) not in ASSOCIATION_TYPES:
            return _error(400, f"No default association from {frm} to {to}", "VALIDATION_ERROR")
        started = _now_iso()
        inputs = (request.json() or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "Invalid input JSON: 'inputs' is required", "VALIDATION_ERROR")
        results, errors = [], []
        for item in inputs:
            from_id = str(((item or {}).get("from") or {}).get("id") or "")
            to_id = str(((item or {}).get("to") or {}).get("id") or "")
            if not self._exists(frm, from_id) or not self._exists(to, to_id):
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"No {frm} with id {from_id} or {to} with id {to_id}",
                        "context": {"fromId": [from_id], "toId": [to_id]},
                        "errors": [],
                    }
                )
                continue
            results.append(self._link(frm, from_id, to, to_id))
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if errors:
            answer["errors"] = errors
            answer["numErrors"] = len(errors)
        return FakeResponse(207 if errors else 200, answer)

    def _associate_one(self, frm: str, from_id: str, to: str, to_id: str) -> FakeResponse:
        if (frm, to) not in ASSOCIATION_TYPES:
            return _error(400, f"No default association from {frm} to {to}", "VALIDATION_ERROR")
        if not self._exists(frm, from_id) or not self._exists(to, to_id):
            return _error(404, "Object not found.", "OBJECT_NOT_FOUND")
        started = _now_iso()
        return FakeResponse(
            200,
            {
                "status": "COMPLETE",
                "results": [self._link(frm, from_id, to, to_id)],
                "startedAt": started,
                "completedAt": _now_iso(),
            },
        )

    def _link(self, frm: str, from_id: str, to: str, to_id: str) -> dict[str, Any]:
        self.associations.add((frm, from_id, to, to_id))
        self.associations.add((to, to_id, frm, from_id))
        return {
            "from": {"id": from_id},
            "to": {"id": to_id},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": ASSOCIATION_TYPES[(frm, to)],
            },
        }

    def _list_associations(self, frm: str, from_id: str, to: str) -> FakeResponse:
        results = [
            {
                "toObjectId": int(t_id) if t_id.isdigit() else t_id,
                "associationTypes": [
                    {
                        "category": "HUBSPOT_DEFINED",
                        "typeId": ASSOCIATION_TYPES.get((frm, to), 0),
                        "label": None,
                    }
                ],
            }
            for (f, f_id, t, t_id) in sorted(self.associations)
            if f == frm and f_id == from_id and t == to
        ]
        return FakeResponse(200, {"results": results})

    # -- state and control

    def contacts(self) -> list[dict[str, Any]]:
        """The live (not archived) contacts."""
        with self.lock:
            return [dict(c) for c in self.objects["contacts"].values() if not c["archived"]]

    def contact(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._by_unique("contacts", email)
            return None if found is None else dict(found)

    def deal(self, order_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._by_unique("deals", order_id)
            return None if found is None else dict(found)

    def associated(self, frm: str, from_id: str, to: str) -> list[str]:
        with self.lock:
            return sorted(t_id for (f, f_id, t, t_id) in self.associations
                          if f == frm and f_id == from_id and t == to)  # fmt: skip

    def control(self, request: FakeRequest, parts: list[str]) -> FakeResponse | None:
        if parts == ["rate_limit"] and request.method == "POST":
            spec = request.json()
            with self.lock:
                self.rate_limit = int(spec.get("max", self.rate_limit))
                self.window_seconds = float(spec.get("window_seconds", self.window_seconds))
                self._window.clear()
                return FakeResponse(
                    200, {"max": self.rate_limit, "window_seconds": self.window_seconds}
                )
        return None

    def state(self) -> dict[str, Any]:
        return {
            "contacts": list(self.objects["contacts"].values()),
            "deals": list(self.objects["deals"].values()),
            "associations": [list(a) for a in sorted(self.associations)],
            "rate_limit": {"max": self.rate_limit, "window_seconds": self.window_seconds},
            "throttled": self.throttled,
        }

    def reset_state(self) -> None:
        self.objects = {"contacts": {}, "deals": {}}
        self.associations.clear()
        self._window.clear()
        self.throttled = 0
        self.rate_limit = RATE_LIMIT_MAX
        self.window_seconds = RATE_LIMIT_WINDOW_SECONDS
