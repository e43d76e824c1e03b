"""Counts the AWS requests the functions make, on the emulator's moto side.

Installed from bench code only (no product code changes): `install()` wraps
`MotoServer.__call__` (every request a client sends to the emulator's AWS endpoint) and moto's
EventBridge -> SQS delivery (a rule target's SendMessage, which AWS bills to the queue owner but
which never crosses the HTTP endpoint). Counting is off until `Tally.enabled` is set, so the
emulator's own set-up requests are not counted.

Who made a request comes from its User-Agent: the workers run with `bench/site` on PYTHONPATH,
whose `sitecustomize` sets `AWS_SDK_UA_APP_ID` to the function's name, so botocore adds
`app/<name>`; requests without it are the emulator's (its SQS pollers stand in for Lambda's
event source mappings, which AWS bills as SQS requests too; `wait_idle`'s GetQueueAttributes
and the harness's own reads are not part of an order and are dropped).

Billing units:
- SQS: each 64 KB chunk of a request's payload is one request (a batch of 10 is one request).
- EventBridge: each 64 KB chunk of an entry is one event (entry size as AWS computes it).
- DynamoDB: write units per 1 KB of the larger of the item before and after (transactions x2;
  a failed condition still consumes them); read units per 4 KB read (eventually consistent
  x0.5, transactions x2). Item sizes come from moto's own store (`Item.size()`, AWS's rule) or,
  for reads, from the returned items.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .prices import EVENTBRIDGE_UNIT_BYTES, SQS_UNIT_BYTES

log = logging.getLogger("bench")
UA_APP = re.compile(r"\bapp/([A-Za-z0-9._\-]+)")
EMULATOR = "(emulator)"
ESM_OPERATIONS = {"ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"}


def ddb_size(value: Any) -> int:
    """The size DynamoDB bills for an attribute value in DynamoDB JSON."""
    if not isinstance(value, dict) or len(value) != 1:
        return 0
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return math.ceil(len(str(inner)) * 3 / 4)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + ddb_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(ddb_size(v) + 1 for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(ddb_size({kind[0]: v}) for v in inner)
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(k.encode()) + ddb_size(v) for k, v in item.items())


def entry_size(entry: dict[str, Any]) -> int:
    """A PutEvents entry's size as EventBridge computes it for billing and limits."""
    size = 14 if entry.get("Time") else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    size += sum(len(str(r).encode()) for r in entry.get("Resources") or [])
    return size


def chunks(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


@dataclass
class Tally:
    """Requests and billing units, per (origin, service, operation)."""

    enabled: bool = False
    names: dict[str, str] = field(default_factory=dict)  # UA app id -> function logical id
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    units: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    units_by_request: dict[tuple[str, str, str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    empty_receives: int = 0
    errors: int = 0
    eventbridge_to_sqs: Counter[str] = field(default_factory=Counter)
    writes_by_item: dict[tuple[str, str, str], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0.0])
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def origin(self, environ: dict[str, Any]) -> str:
        match = UA_APP.search(str(environ.get("HTTP_USER_AGENT", "")))
        if match is None:
            return EMULATOR
        app = match.group(1)
        return self.names.get(app, app)

    def add(self, origin: str, service: str, operation: str, units: dict[str, float]) -> None:
        with self.lock:
            self.requests[(origin, service, operation)] += 1
            for name, amount in units.items():
                self.units[name] += amount
                self.units_by_request[(origin, service, operation, name)] += amount

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": [
                    {"origin": o, "service": s, "operation": op, "count": n}
                    for (o, s, op), n in sorted(self.requests.items())
                ],
                "units": dict(self.units),
                "units_by_request": [
                    {"origin": o, "service": s, "operation": op, "unit": u, "amount": a}
                    for (o, s, op, u), a in sorted(self.units_by_request.items())
                ],
                "empty_receives": self.empty_receives,
                "counter_errors": self.errors,
                "eventbridge_to_sqs": dict(self.eventbridge_to_sqs),
                "writes_by_item": [
                    {"origin": o, "table": t, "item": k, "writes": int(n), "wru": w}
                    for (o, t, k), (n, w) in sorted(
                        self.writes_by_item.items(), key=lambda kv: -kv[1][1]
                    )
                ],
            }


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class DynamoSizer:
    """Item sizes before and after a write, read from moto's store under the server's lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def stored(self, table: str, key: dict[str, Any]) -> int:
        from moto.dynamodb.models import dynamodb_backends
        from storewire_local.emulator.cfn import ACCOUNT_ID, REGION

        backend = dynamodb_backends[ACCOUNT_ID][REGION]
        with self._lock, contextlib.suppress(Exception):
            moto_table = backend.get_table(table)
            keys = {moto_table.hash_key_attr: key[moto_table.hash_key_attr]}
            if moto_table.range_key_attr:
                keys[moto_table.range_key_attr] = key[moto_table.range_key_attr]
            item = backend.get_item(table, keys)
            return int(item.size()) if item is not None else 0
        return 0


def _write_targets(operation: str, request: dict[str, Any]) -> Iterator[tuple[str, Any, int]]:
    """(table, key-or-item, transaction factor) of each item a write touches."""
    if operation == "PutItem":
        yield request.get("TableName", ""), request.get("Item") or {}, 1
    elif operation in ("UpdateItem", "DeleteItem"):
        yield request.get("TableName", ""), request.get("Key") or {}, 1
    elif operation == "BatchWriteItem":
        for table, items in (request.get("RequestItems") or {}).items():
            for item in items:
                put = item.get("PutRequest") or {}
                delete = item.get("DeleteRequest") or {}
                yield table, put.get("Item") or delete.get("Key") or {}, 1
    elif operation == "TransactWriteItems":
        for item in request.get("TransactItems") or []:
            for kind, spec in item.items():
                target = spec.get("Item") if kind == "Put" else spec.get("Key")
                yield spec.get("TableName", ""), target or {}, 2


def install(tally: Tally) -> Callable[[], None]:
    """Wrap moto's HTTP entry point and its EventBridge->SQS delivery; returns an undo."""
    from moto.events.models import Rule
    from storewire_local.emulator.moto_server import MotoServer, describe_request

    original_call = MotoServer.__call__
    original_send = Rule._send_to_sqs_queue

    def counted_call(self: MotoServer, environ: dict[str, Any], start_response: Any) -> Any:
        if not tally.enabled or str(environ.get("PATH_INFO", "")).startswith("/_storewire/"):
            return original_call(self, environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        import io

        environ["wsgi.input"] = io.BytesIO(body)
        info = describe_request(environ, body)
        service, operation = info.service or "?", info.operation or "?"
        if service == "s3" and operation == "?":
            operation = str(environ.get("REQUEST_METHOD", "?")) + "Object"
        origin = tally.origin(environ)
        sizer = DynamoSizer(self.lock)
        request = _json(body) if info.json_protocol else {}
        before: list[int] = []
        targets: list[tuple[str, Any, int]] = []
        if service == "dynamodb":
            targets = list(_write_targets(operation, request))
            before = [sizer.stored(t, k) for t, k, _ in targets]
        result = original_call(self, environ, start_response)
        payload = b"".join(result)
        if origin == EMULATOR and operation not in ESM_OPERATIONS:
            return [payload]  # the emulator's own bookkeeping (wait_idle, set-up)
        try:
            _account(
                tally,
                sizer,
                origin,
                service,
                operation,
                request,
                body,
                payload,
                info.json_protocol,
                targets,
                before,
            )
        except Exception:  # counting must never break the emulator
            log.exception("bench counter failed on %s.%s", service, operation)
            with tally.lock:
                tally.errors += 1
        return [payload]

    def counted_send(self: Any, resource_id: str, event: dict[str, Any], *args: Any) -> None:
        original_send(self, resource_id, event, *args)
        if tally.enabled:
            size = len(json.dumps(event, default=str).encode())
            with tally.lock:
                tally.eventbridge_to_sqs[resource_id] += 1
            tally.add(
                "(EventBridge rule)",
                "sqs",
                "SendMessage",
                {"sqs_requests": chunks(size, SQS_UNIT_BYTES)},
            )

    MotoServer.__call__ = counted_call  # type: ignore[method-assign]
    Rule._send_to_sqs_queue = counted_send  # type: ignore[method-assign]

    def undo() -> None:
        MotoServer.__call__ = original_call  # type: ignore[method-assign]
        Rule._send_to_sqs_queue = original_send  # type: ignore[method-assign]

    return undo


def _account(
    tally: Tally,
    sizer: DynamoSizer,
    origin: str,
    service: str,
    operation: str,
    request: dict[str, Any],
    body: bytes,
    payload: bytes,
    json_protocol: bool,
    targets: list[tuple[str, Any, int]],
    before: list[int],
) -> None:
    response = _json(payload) if json_protocol else {}
    if service == "sqs" and operation == "ReceiveMessage" and not response.get("Messages"):
        with tally.lock:
            tally.empty_receives += 1
        return  # an idle poll: Lambda's pollers cost per queue, not per order
    units = _units(service, operation, request, response, body, payload)
    if service == "dynamodb" and targets:
        wru = 0.0
        for (table, key, factor), old in zip(targets, before, strict=True):
            size = max(old, item_size(key), sizer.stored(table, key))
            item_wru = factor * chunks(size, 1024)
            wru += item_wru
            kind = (origin, _table_kind(table), _item_kind(key))
            with tally.lock:
                tally.writes_by_item[kind][0] += 1
                tally.writes_by_item[kind][1] += item_wru
        units["dynamodb_wru"] = wru
    tally.add(origin, service, operation, units)


def _table_kind(table: str) -> str:
    """The template's logical table, without the stack's prefix and suffix."""
    return re.sub(r"^storewire-[a-z0-9]+-", "", table)


def _item_kind(key: Any) -> str:
    """What an item is, from its key: the partition key's prefix and the sort key's."""
    parts = []
    for name in ("pk", "sk"):
        value = (key or {}).get(name, {})
        text = str(value.get("S", "")) if isinstance(value, dict) else ""
        parts.append(re.split(r"[#:]", text, maxsplit=1)[0] if text else "")
    if not any(parts):
        return ",".join(sorted((key or {}).keys()))
    return "/".join(p for p in parts if p)


def _units(
    service: str,
    operation: str,
    request: dict[str, Any],
    response: dict[str, Any],
    body: bytes,
    payload: bytes,
) -> dict[str, float]:
    if service == "events" and operation == "PutEvents":
        entries = request.get("Entries") or []
        return {
            "eventbridge_events": float(
                sum(chunks(entry_size(e), EVENTBRIDGE_UNIT_BYTES) for e in entries)
            ),
            "eventbridge_entries": float(len(entries)),
        }
    if service == "sqs":
        if operation == "ReceiveMessage":
            size = sum(len(str(m.get("Body", "")).encode()) for m in response["Messages"])
            return {"sqs_requests": chunks(size, SQS_UNIT_BYTES)}
        if operation == "SendMessage":
            size = len(str(request.get("MessageBody", "")).encode())
            return {"sqs_requests": chunks(size, SQS_UNIT_BYTES)}
        if operation == "SendMessageBatch":
            size = sum(len(str(e.get("MessageBody", "")).encode()) for e in request["Entries"])
            return {"sqs_requests": chunks(size, SQS_UNIT_BYTES)}
        return {"sqs_requests": 1.0}
    if service == "dynamodb":
        return _read_units(operation, request, response)
    if service == "secretsmanager":
        return {"secrets_calls": 1.0}
    if service == "s3":
        return {"s3_" + ("put" if operation.startswith(("PUT", "POST")) else "get"): 1.0}
    return {}


def _rru(size: int, consistent: bool, factor: int = 1) -> float:
    units = chunks(size, 4096) * factor
    return float(units) if consistent else units / 2


def _read_units(
    operation: str, request: dict[str, Any], response: dict[str, Any]
) -> dict[str, float]:
    consistent = bool(request.get("ConsistentRead"))
    if operation == "GetItem":
        return {"dynamodb_rru": _rru(item_size(response.get("Item")), consistent)}
    if operation in ("Query", "Scan"):
        total = sum(item_size(i) for i in response.get("Items") or [])
        return {"dynamodb_rru": _rru(total, consistent)}
    if operation == "BatchGetItem":
        rru = 0.0
        for table, items in (response.get("Responses") or {}).items():
            spec = (request.get("RequestItems") or {}).get(table) or {}
            rru += sum(_rru(item_size(i), bool(spec.get("ConsistentRead"))) for i in items)
        return {"dynamodb_rru": rru}
    if operation == "TransactGetItems":
        items: Iterable[dict[str, Any]] = response.get("Responses") or []
        return {"dynamodb_rru": sum(_rru(item_size(i.get("Item")), True, 2) for i in items)}
    return {}
