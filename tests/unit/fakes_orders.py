"""An in-memory `OrderStore` with the same rules as the DynamoDB adapter (no Mock()).

Every change goes through the pure functions of `storewire.domain.orders`, exactly as the
adapter does, so a test against this fake exercises the real guards: one application per
(concern, event id), the transition graph, and the monotonic storefront `updated_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from storewire.domain import orders as domain
from storewire.domain.events import CanonicalEvent
from storewire.domain.orders import Concern, OrderNotFound, OrderRecord


class InMemoryOrderStore:
    """Order records in a dict; `writes` counts successful writes (each bumps `version`)."""

    def __init__(self) -> None:
        self.records: dict[str, OrderRecord] = {}
        self.writes = 0

    def get(self, order_id: str) -> OrderRecord | None:
        return self.records.get(order_id)

    def find(self, ref: str) -> OrderRecord | None:
        if ref in self.records:
            return self.records[ref]
        matches = [r for r in self.records.values() if r.external_order_id == ref]
        return matches[0] if len(matches) == 1 else None

    def record_placed(self, event: CanonicalEvent) -> OrderRecord:
        fresh = domain.new_record(event)
        existing = self.records.get(fresh.order_id)
        if existing is None:
            self._put(fresh.model_copy(update={"version": 1}))
            return self.records[fresh.order_id]
        merged = domain.merge_storefront(existing, event)
        if merged is not None:
            self._put(merged.model_copy(update={"version": existing.version + 1}))
        return self.records[fresh.order_id]

    def record_storefront_update(self, event: CanonicalEvent) -> bool:
        assert event.order_id is not None
        return self._change(event.order_id, lambda r: domain.merge_storefront(r, event))

    def transition(
        self,
        order_id: str,
        concern: Concern,
        to_status: str,
        *,
        event_id: str,
        at: datetime,
        details: Mapping[str, Any] | None = None,
        event_type: str = "",
        summary: str | None = None,
    ) -> bool:
        return self._change(
            order_id,
            lambda r: domain.transition(
                r,
                concern,
                to_status,
                event_id=event_id,
                at=at,
                details=details,
                event_type=event_type,
                summary=summary,
            ),
        )

    def append_timeline(
        self, order_id: str, *, event_id: str, event_type: str, at: datetime, summary: str
    ) -> bool:
        return self._change(
            order_id,
            lambda r: domain.append_timeline(
                r, event_id=event_id, event_type=event_type, at=at, summary=summary
            ),
        )

    def _change(self, order_id: str, change: Callable[[OrderRecord], OrderRecord | None]) -> bool:
        record = self.records.get(order_id)
        if record is None:
            raise OrderNotFound(f"no order record for {order_id} yet")
        changed = change(record)
        if changed is None:
            return False
        self._put(changed.model_copy(update={"version": record.version + 1}))
        return True

    def _put(self, record: OrderRecord) -> None:
        self.records[record.order_id] = record
        self.writes += 1
