"""``storewire events``: the events put on the bus, locally or from a deployed stack."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx


def matches(event: dict[str, Any], order: str | None, detail_type: str | None) -> bool:
    if detail_type is not None and event.get("detail-type") != detail_type:
        return False
    if order is not None:
        raw = event.get("detail")
        detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
        candidates = {str(detail.get("order_id")), str(detail.get("external_order_id"))}
        if order not in candidates:
            return False
    return True


def filter_events(
    events: Iterable[dict[str, Any]], order: str | None = None, detail_type: str | None = None
) -> list[dict[str, Any]]:
    return [e for e in events if matches(e, order, detail_type)]


def local_events(aws_endpoint_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{aws_endpoint_url.rstrip('/')}/_storewire/events", timeout=10)
    answer.raise_for_status()
    data = answer.json()
    return list(data) if isinstance(data, list) else []


def stack_log_group(cloudformation: Any, stack_name: str) -> str:
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stacks[0].get("Outputs") or []:
        if output.get("OutputKey") == "EventLogGroupName":
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack_name} has no EventLogGroupName output")


def stack_events(
    logs: Any,
    log_group: str,
    order: str | None = None,
    detail_type: str | None = None,
    start_time_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Every event logged in the stack's event log group, oldest first, filtered."""
    kwargs: dict[str, Any] = {"logGroupName": log_group}
    if start_time_ms is not None:
        kwargs["startTime"] = start_time_ms
    found: list[tuple[int, dict[str, Any]]] = []
    while True:
        page = logs.filter_log_events(**kwargs)
        for item in page.get("events") or []:
            try:
                event = json.loads(item["message"])
            except (ValueError, KeyError):
                continue
            if isinstance(event, dict) and matches(event, order, detail_type):
                found.append((int(item.get("timestamp", 0)), event))
        token = page.get("nextToken")
        if not token:
            break
        kwargs["nextToken"] = token
    found.sort(key=lambda pair: (pair[0], pair[1].get("time") or ""))
    return [event for _, event in found]
