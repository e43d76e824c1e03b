"""`CrmGateway` on HubSpot's CRM API (or the local HubSpot fake: only `base_url` differs).

* Contacts: ``POST /crm/v3/objects/contacts/batch/upsert`` with
  ``{"inputs": [{"idProperty": "email", "id": <email>, "objectWriteTraceId": <n>,
  "properties": {...}}]}``.
* Orders as deals: ``POST /crm/v3/objects/deals/batch/upsert`` keyed on the unique deal
  property ``storewire_order_id``.
* Deal -> contact: ``POST /crm/v4/associations/deals/contacts/batch/associate/default``
  with ``{"inputs": [{"from": {"id": <deal>}, "to": {"id": <contact>}}]}``.

Auth is a private app's access token as ``Authorization: Bearer``. Every input carries an
``objectWriteTraceId`` (its position), which turns on HubSpot's multi-status answers: a
``207`` whose ``results[]`` are the objects written and whose ``errors[]`` name the refused
inputs in ``context.objectWriteTraceId`` (or by ``context.ids``/``id``), so one invalid email
fails only its own input. The upserts are idempotent (same unique value, same properties),
so the shared `HttpClient` may retry them on 5xx and on 429, honouring ``Retry-After``
within the deadline. HubSpot's error body ``{"status": "error", "message", "category" |
"errorType", "correlationId", ...}`` gives the typed error its code (``RATE_LIMIT``,
``VALIDATION_ERROR``, ``INVALID_AUTHENTICATION``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from storewire.domain.crm import (
    CONTACT_ID_PROPERTY,
    DEAL_ID_PROPERTY,
    BatchOutcome,
    CrmInput,
    InputError,
)
from storewire.errors import PermanentUpstreamError
from storewire.http import HttpClient

DEFAULT_BASE_URL = "https://api.hubapi.com"


def describe_hubspot_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from HubSpot's error body; tolerant of non-JSON bodies."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return None, f"HTTP {response.status_code}"
    code = body.get("errorType") or body.get("category")
    return (str(code) if code else None), str(body.get("message") or "")[:300]


class HubSpotCrm:
    """HubSpot contacts, deals and associations through the shared HTTP client."""

    name = "hubspot"

    def __init__(
        self, http: HttpClient, access_token: str, *, base_url: str = DEFAULT_BASE_URL
    ) -> None:
        self._http = http
        self._token = access_token
        self._base = base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.request(
            "POST", f"{self._base}{path}", headers=self._headers(), json=body, idempotent=True
        )
        if response.status_code == 204 or not response.content:
            return {}
        answer: dict[str, Any] = response.json()
        return answer

    # ------------------------------------------------------------------ the port

    def upsert_contacts(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        return self._upsert("contacts", CONTACT_ID_PROPERTY, inputs)

    def upsert_deals(self, inputs: Sequence[CrmInput]) -> BatchOutcome:
        return self._upsert("deals", DEAL_ID_PROPERTY, inputs)

    def associate_deals(self, pairs: Sequence[tuple[str, str]]) -> BatchOutcome:
        if not pairs:
            return BatchOutcome()
        body = {
            "inputs": [{"from": {"id": deal}, "to": {"id": contact}} for deal, contact in pairs]
        }
        answer = self._post("/crm/v4/associations/deals/contacts/batch/associate/default", body)
        ids = {
            str(r["from"]["id"]): str(r["to"]["id"])
            for r in answer.get("results", [])
            if isinstance(r, dict) and "from" in r and "to" in r
        }
        errors: dict[str, InputError] = {}
        deals = [deal for deal, _ in pairs]
        for entry in answer.get("errors", []) or []:
            for key in _error_keys(entry, deals, {}):
                errors[key] = _input_error(key, entry)
        for deal in deals:
            if deal not in ids and deal not in errors:
                ids[deal] = dict(pairs)[deal]
        return BatchOutcome(ids=ids, errors=errors)

    def archive_contact(self, contact_id: str) -> None:
        """Archive (HubSpot's delete) a contact by its id; a missing one is fine."""
        self._http.request(
            "DELETE",
            f"{self._base}/crm/v3/objects/contacts/{contact_id}",
            headers=self._headers(),
        )

    def gdpr_delete_contact(
        self, *, email: str | None = None, contact_id: str | None = None
    ) -> bool:
        """Permanently delete a contact (HubSpot's GDPR delete), by email or by id.

        `POST /crm/v3/objects/contacts/gdpr-delete`: unlike archiving, the contact cannot be
        restored. True if one was deleted; False if HubSpot had none (a redelivery), which is
        fine: the request is idempotent.
        """
        if email:
            body: dict[str, Any] = {"objectId": email, "idProperty": "email"}
        elif contact_id:
            body = {"objectId": contact_id}
        else:
            return False
        try:
            self._post("/crm/v3/objects/contacts/gdpr-delete", body)
        except PermanentUpstreamError as error:
            if error.status == 404:
                return False
            raise
        return True

    # ------------------------------------------------------------------ internals

    def _upsert(
        self, object_type: str, id_property: str, inputs: Sequence[CrmInput]
    ) -> BatchOutcome:
        if not inputs:
            return BatchOutcome()
        traces = {str(i): item.key for i, item in enumerate(inputs)}
        body = {
            "inputs": [
                {
                    "idProperty": id_property,
                    "id": item.key,
                    "objectWriteTraceId": trace,
                    "properties": item.properties,
                }
                for trace, item in zip(traces, inputs, strict=True)
            ]
        }
        answer = self._post(f"/crm/v3/objects/{object_type}/batch/upsert", body)
        by_value = {item.key.lower(): item.key for item in inputs}
        ids: dict[str, str] = {}
        created: set[str] = set()
        for result in answer.get("results", []) or []:
            if not isinstance(result, dict) or "id" not in result:
                continue
            key = traces.get(str(result.get("objectWriteTraceId")))
            if key is None:
                value = str((result.get("properties") or {}).get(id_property) or "").lower()
                key = by_value.get(value)
            if key is None:
                continue
            ids[key] = str(result["id"])
            if result.get("new"):
                created.add(key)
        errors: dict[str, InputError] = {}
        for entry in answer.get("errors", []) or []:
            if not isinstance(entry, dict):
                continue
            for key in _error_keys(entry, list(by_value.values()), traces):
                errors[key] = _input_error(key, entry)
        return BatchOutcome(ids=ids, created=frozenset(created), errors=errors)


def _error_keys(entry: Any, keys: Sequence[str], traces: dict[str, str]) -> list[str]:
    """The inputs a per-input error names: by trace id, else by the ids in its context."""
    if not isinstance(entry, dict):
        return []
    context = entry.get("context") or {}
    found: list[str] = []
    if isinstance(context, dict):
        for trace in context.get("objectWriteTraceId") or []:
            if str(trace) in traces:
                found.append(traces[str(trace)])
        if not found:
            lowered = {k.lower(): k for k in keys}
            for name in ("ids", "id", "email", "fromId"):
                values = context.get(name) or []
                for value in values if isinstance(values, list) else [values]:
                    match = lowered.get(str(value).lower())
                    if match is not None:
                        found.append(match)
    if not found and entry.get("id") is not None:
        match = {k.lower(): k for k in keys}.get(str(entry["id"]).lower())
        if match is not None:
            found.append(match)
    return found


def _input_error(key: str, entry: dict[str, Any]) -> InputError:
    details = entry.get("errors") or []
    first = details[0] if details and isinstance(details[0], dict) else {}
    code = first.get("code") or entry.get("subCategory")
    message = str(first.get("message") or entry.get("message") or "refused")
    return InputError(
        key=key,
        category=str(entry.get("category")) if entry.get("category") else None,
        code=str(code) if code else None,
        message=message[:300],
    )
