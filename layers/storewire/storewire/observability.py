"""Per-consumer telemetry: the correlation id on every log line and the EMF metrics.

One `ConsumerTelemetry` per consumer module (module level, like its `Logger`)::

    telemetry = ConsumerTelemetry("stock_adjustment", logger)

    def process_record(record, deps):
        telemetry.begin_record(record.message_id)   # per-record keys cleared, message_id set
        event = parse_record(...)
        telemetry.bind_event(event)                  # order_id + correlation_id on every line
        ...
        telemetry.dead_lettered()  /  telemetry.processed(outcome)

    def lambda_handler(event, context, deps=None):
        ...
        return telemetry.finish_batch(process_sqs_batch(...))  # retried, then flush

Metrics (namespace `Storewire`, dimension `service` = the consumer), see docs/observability.md:
`RecordsProcessed`, `DuplicateRecords`, `RecordsRetried`, `RecordsDeadLettered` (Count) and
`ThirdPartyLatency` (Milliseconds, one datapoint per outbound HTTP attempt, fed by the
`storewire.http` observer hook, so the HTTP layer and the domain never import Powertools).

Powertools `Metrics` is imported on first use, not at import: the cold start budget
(docs/performance.md) is measured on the handler import alone.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import Metrics

NAMESPACE = "Storewire"

PROCESSED = "RecordsProcessed"
DUPLICATES = "DuplicateRecords"
RETRIED = "RecordsRetried"
DEAD_LETTERED = "RecordsDeadLettered"
THIRD_PARTY_LATENCY = "ThirdPartyLatency"

DUPLICATE_OUTCOMES = frozenset({"duplicate", "already_created", "already_published"})
"""Outcomes that mean "this record's effect had already happened" (a redelivery, a replay)."""

RECORD_KEYS = ("message_id", "event_id", "event_type", "order_id", "correlation_id", "sku")
"""Log keys that belong to one record: removed before the next record is bound."""


_ORDER_KEYS = ("order_id", "correlation_id")


class _Logger(Protocol):
    def append_keys(self, **additional_keys: Any) -> None: ...
    def remove_keys(self, keys: Any) -> None: ...


class ConsumerTelemetry:
    """Correlation keys and EMF metrics for one consumer (one per function)."""

    def __init__(self, service: str, logger: _Logger, namespace: str = NAMESPACE) -> None:
        self.service = service
        self.namespace = namespace
        self._logger = logger
        self._metrics: Metrics | None = None

    # ------------------------------------------------------------------ logs

    def begin_record(self, message_id: str) -> None:
        """A new record: the previous record's keys go, its message id is bound."""
        self._logger.remove_keys(list(RECORD_KEYS))
        self._logger.append_keys(message_id=message_id)

    def bind_event(self, event: Any) -> None:
        """Bind the event's ids; the correlation id is the order id (or the event's own)."""
        order_id = getattr(event, "order_id", None)
        correlation_id = order_id or getattr(event, "correlation_id", None)
        keys: dict[str, Any] = {
            "event_id": getattr(event, "event_id", None),
            "event_type": getattr(event, "event_type", None),
        }
        if order_id:
            keys["order_id"] = order_id
        if correlation_id:
            keys["correlation_id"] = correlation_id
        self._logger.append_keys(**{k: v for k, v in keys.items() if v is not None})

    def bind_body(self, body: str) -> None:
        """Bind the ids of a record body (an EventBridge envelope or a bare canonical event)
        without validating it: for handlers that parse the batch elsewhere."""
        try:
            envelope = json.loads(body)
            detail = envelope["detail"] if "detail-type" in envelope else envelope
            ids = {k: detail.get(k) for k in ("event_id", "event_type", *_ORDER_KEYS)}
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self.bind_event(SimpleNamespace(**{k: v for k, v in ids.items() if isinstance(v, str)}))

    def bind_order(self, order_id: str | None) -> None:
        """Bind an order id learnt late (e.g. resolved from a tracker)."""
        if order_id:
            self._logger.append_keys(order_id=order_id, correlation_id=order_id)

    # ------------------------------------------------------------------ metrics

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            from aws_lambda_powertools.metrics import Metrics

            self._metrics = Metrics(namespace=self.namespace, service=self.service)
        return self._metrics

    def count(self, name: str, value: int = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def processed(self, outcome: str | None = None) -> None:
        """A record done (its effect applied, or already there: a duplicate)."""
        self.count(PROCESSED)
        if outcome is not None and str(outcome) in DUPLICATE_OUTCOMES:
            self.count(DUPLICATES)

    def dead_lettered(self) -> None:
        self.count(DEAD_LETTERED)

    def observe_http(self, service: str, method: str, status: int | None, seconds: float) -> None:
        """`storewire.http` observer: one latency datapoint per outbound attempt."""
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(
            name=THIRD_PARTY_LATENCY, unit=MetricUnit.Milliseconds, value=seconds * 1000.0
        )

    def finish_batch[R](self, response: R) -> R:
        """Count the batch's retried records (its item failures), flush, pass `response` on."""
        items = response.get("batchItemFailures") if isinstance(response, dict) else None
        failures = len(items or [])
        if failures:
            self.count(RETRIED, failures)
        self.flush()
        return response

    def flush(self) -> None:
        """Print the EMF document(s) to stdout (CloudWatch turns them into metrics)."""
        if self._metrics is not None:
            self._metrics.flush_metrics(raise_on_empty_metrics=False)
