"""The ports the service layer needs, as Protocols. Adapters implement them; tests fake them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Protocol

from storewire.domain.events import BusEntry, ClaimCheck
from storewire.domain.inventory import (
    LedgerEntry,
    LineAllocation,
    Location,
    MoveKind,
    OrderStockState,
    StockLevel,
)
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import GatewayPayment


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    """Nobody had this delivery (or a previous attempt's lease expired): go ahead."""
    DUPLICATE = "duplicate"
    """The delivery was completed before: answer 200 and emit nothing."""
    IN_PROGRESS = "in_progress"
    """Another invocation holds a live lease on it: answer 409 so the sender retries."""


class DedupeStore(Protocol):
    """Remembers sender deliveries so each is processed once."""

    def claim(self, key: str, ttl_seconds: int) -> ClaimOutcome:
        """Claim `key` for processing; the record is forgotten after `ttl_seconds`."""
        ...

    def complete(self, key: str, event_ids: Sequence[str]) -> None:
        """Mark a claimed key done (its events are on the bus)."""
        ...

    def release(self, key: str) -> None:
        """Give a claimed key up so the sender's retry can process it."""
        ...


class EventPublisher(Protocol):
    def publish(self, entries: Sequence[BusEntry]) -> None:
        """Put every entry on the bus, or raise `PublishFailed`."""
        ...


class ClaimCheckStore(Protocol):
    def put(self, key: str, body: bytes) -> ClaimCheck:
        """Store `body` under `key` and return the reference that finds and verifies it."""
        ...

    def load(self, claim_check: ClaimCheck) -> bytes:
        """The stored body, verified against the reference's size and sha256."""
        ...


class SecretProvider(Protocol):
    def get(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, str]:
        """The secret's JSON, e.g. ``{"current": "...", "previous": "..."}`` (cached)."""
        ...


class PaymentGateway(Protocol):
    """A payment gateway that can say what it received for an order (Stripe, Shopify)."""

    name: str

    def fetch_payment(self, order: OrderRecord, reference: str | None) -> GatewayPayment:
        """The gateway's current view of the payment `reference` (or of the order's)."""
        ...


class DeadLetterSink(Protocol):
    """Where a consumer sends a record that retrying cannot fix, with the reason."""

    def send(self, body: str, *, error_type: str, reason: str, message_id: str) -> None:
        """Put `body` (unchanged) on the dead-letter queue; `RetryableError` if it cannot."""
        ...


class StockStore(Protocol):
    """Stock rows, locations and the ledger (`DynamoDBStockStore`; a fake in tests).

    (`OrderStore`, the order records' port, is defined with the record in
    `storewire.domain.orders`.)
    """

    def locations(self) -> list[Location]:
        """Configured locations; the default location is always among them."""
        ...

    def put_location(self, location: Location) -> None: ...

    def levels(self, skus: Iterable[str]) -> dict[str, list[StockLevel]]:
        """The rows of each SKU at the configured locations (strongly consistent)."""
        ...

    def order_state(self, order_id: str) -> OrderStockState:
        """The order's ledger entries and flags (one strongly consistent read)."""
        ...

    def apply(self, order_id: str, kind: MoveKind, entries: Sequence[LedgerEntry]) -> None:
        """Apply line moves of one kind as ONE transaction, or raise `MoveRejected`."""
        ...

    def mark(
        self,
        order_id: str,
        *,
        placed: bool = False,
        cancelled: bool = False,
        committed: bool = False,
        backordered: Sequence[LineAllocation] = (),
    ) -> bool:
        """Set the order's flags; False when `placed` was set before (outcome fixed)."""
        ...

    def set_on_hand(self, sku: str, location: str, on_hand: int, *, ref: str) -> StockLevel:
        """A count: on_hand = N (available follows), once per `ref`."""
        ...
