"""The ports the service layer needs, as Protocols. Adapters implement them; tests fake them."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from storewire.domain.events import BusEntry, ClaimCheck


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
