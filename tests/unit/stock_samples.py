"""Builders of the order events stock adjustment consumes, and a recording publisher.

Events are built as the Shopify normaliser builds them (canonical ids, Money, OrderData), with
deterministic event ids derived from a delivery id the test chooses, so "the same delivery
again" is literally the same event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from storewire.domain.events import (
    BusEntry,
    CanonicalEvent,
    OrderCancelled,
    OrderData,
    OrderLine,
    OrderPlaced,
    OrderTotals,
    OrderUpdated,
    RefundData,
    RefundIssued,
    RefundLine,
    canonical_order_id,
    event_id,
)
from storewire.domain.money import Money

SHOP = "storewire-demo.myshopify.com"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

Line = tuple[str, str, int]
"""(line_id, sku, quantity)"""


def order_id(external: str) -> str:
    return canonical_order_id("shopify", SHOP, external)


def _usd(amount: str | int) -> Money:
    return Money.parse(Decimal(amount), "USD")


def order_data(
    external: str,
    lines: Sequence[Line],
    *,
    updated_at: datetime = T0,
    cancelled: bool = False,
    unit_price: str = "10.00",
) -> OrderData:
    order_lines = tuple(
        OrderLine(
            line_id=line_id,
            sku=sku,
            title=f"Item {sku}",
            quantity=quantity,
            unit_price=_usd(unit_price),
            total_discount=_usd(0),
            grams=100,
        )
        for line_id, sku, quantity in lines
    )
    subtotal = _usd(unit_price) * sum(q for _, _, q in lines)
    return OrderData(
        external_order_id=external,
        order_number=f"#{external}",
        currency="USD",
        financial_status="pending",
        lines=order_lines,
        totals=OrderTotals(
            subtotal=subtotal,
            discounts=_usd(0),
            shipping=_usd(0),
            tax=_usd(0),
            total=subtotal,
        ),
        created_at=T0,
        updated_at=updated_at,
        cancelled_at=updated_at if cancelled else None,
    )


def _envelope(event_type: str, external: str, delivery: str) -> dict[str, Any]:
    return {
        "event_id": event_id("shopify", delivery, event_type, 0),
        "occurred_at": T0,
        "source": "shopify",
        "shop": SHOP,
        "channel": "shopify",
        "order_id": order_id(external),
        "external_order_id": external,
        "correlation_id": order_id(external),
        "delivery_id": delivery,
    }


def placed(external: str, lines: Sequence[Line], *, delivery: str | None = None) -> OrderPlaced:
    return OrderPlaced(
        **_envelope("OrderPlaced", external, delivery or f"create-{external}"),
        data=order_data(external, lines),
    )


def updated(
    external: str, lines: Sequence[Line], *, updated_at: datetime, delivery: str
) -> OrderUpdated:
    return OrderUpdated(
        **_envelope("OrderUpdated", external, delivery),
        data=order_data(external, lines, updated_at=updated_at),
    )


def cancelled(
    external: str, lines: Sequence[Line], *, delivery: str | None = None
) -> OrderCancelled:
    return OrderCancelled(
        **_envelope("OrderCancelled", external, delivery or f"cancel-{external}"),
        data=order_data(external, lines, updated_at=T0 + timedelta(minutes=5), cancelled=True),
    )


def payment(
    external: str, kind: str = "PaymentConfirmed", *, delivery: str | None = None
) -> CanonicalEvent:
    """A PaymentConfirmed / PaymentFailed envelope (stock only reads the order id)."""
    return CanonicalEvent(
        **_envelope(kind, external, delivery or f"{kind}-{external}"),
        event_type=kind,
        event_version=1,
        data={"gateway": "stripe", "payment_intent_id": f"pi_{external}"},
    )


def refund(
    external: str,
    refund_id: str,
    lines: Sequence[tuple[str, str, int, bool]],
    *,
    delivery: str | None = None,
) -> RefundIssued:
    """A refund of (line_id, sku, quantity, restock) lines."""
    return RefundIssued(
        **_envelope("RefundIssued", external, delivery or f"refund-{refund_id}"),
        data=RefundData(
            refund_id=refund_id,
            external_order_id=external,
            currency="USD",
            lines=tuple(
                RefundLine(
                    refund_line_id=f"{refund_id}-{line_id}",
                    line_id=line_id,
                    sku=sku,
                    quantity=quantity,
                    restock=restock,
                    restock_type="return" if restock else "no_restock",
                    subtotal=_usd(10) * quantity,
                    total_tax=_usd(0),
                )
                for line_id, sku, quantity, restock in lines
            ),
            transactions=(),
            amount=_usd(10),
            restock=any(r for *_, r in lines),
            created_at=T0 + timedelta(days=3),
        ),
    )


class RecordingPublisher:
    """Keeps every published entry; `fail_next` makes the next calls raise."""

    def __init__(self) -> None:
        self.entries: list[BusEntry] = []
        self.fail_next = 0

    def publish(self, entries: Sequence[BusEntry]) -> None:
        if self.fail_next:
            from storewire.errors import PublishFailed

            self.fail_next -= 1
            raise PublishFailed("the bus is unavailable")
        self.entries.extend(entries)

    def details(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(e["Detail"]) for e in self.entries if detail_type in (None, e["DetailType"])
        ]

    def unique(self, detail_type: str) -> list[dict[str, Any]]:
        """Published events of a type, one per event id (what a deduping consumer sees)."""
        seen: dict[str, dict[str, Any]] = {}
        for detail in self.details(detail_type):
            seen.setdefault(detail["event_id"], detail)
        return list(seen.values())
