"""Hand-written in-memory fakes of every port `ingest_webhook` uses (no Mock())."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storewire.domain.events import BusEntry, ClaimCheck
from storewire.errors import PermanentError, PublishFailed
from storewire.ingest import IngestDeps
from storewire.ports import ClaimOutcome

DEV_SECRET = "shpss_storewire_dev_secret"
SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:shopify-webhook"
# Two seconds after the committed orders/create sample was sent; no sample is stale then.
SAMPLE_NOW = datetime(2026, 11, 20, 15, 15, 35, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = SAMPLE_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class _Record:
    status: str
    lease_until: datetime
    expires_at: datetime
    event_ids: tuple[str, ...] = ()


class InMemoryDedupeStore:
    """Same rules as the DynamoDB adapter: a pending claim with a live lease blocks."""

    def __init__(self, clock: FakeClock, lease_seconds: int = 30) -> None:
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)
        self.records: dict[str, _Record] = {}
        self.calls: list[tuple[str, str]] = []

    def claim(self, key: str, ttl_seconds: int) -> ClaimOutcome:
        self.calls.append(("claim", key))
        now = self.clock()
        existing = self.records.get(key)
        if existing is not None and not (
            existing.status == "pending" and existing.lease_until < now
        ):
            return (
                ClaimOutcome.IN_PROGRESS if existing.status == "pending" else ClaimOutcome.DUPLICATE
            )
        self.records[key] = _Record(
            "pending", now + self.lease, now + timedelta(seconds=ttl_seconds)
        )
        return ClaimOutcome.CLAIMED

    def complete(self, key: str, event_ids: Sequence[str]) -> None:
        self.calls.append(("complete", key))
        self.records[key].status = "done"
        self.records[key].event_ids = tuple(event_ids)

    def release(self, key: str) -> None:
        self.calls.append(("release", key))
        self.records.pop(key, None)


class RecordingPublisher:
    """Keeps what was published; fails the next `fail_next` calls."""

    def __init__(self, fail_next: int = 0) -> None:
        self.fail_next = fail_next
        self.published: list[BusEntry] = []
        self.attempts = 0

    def publish(self, entries: Sequence[BusEntry]) -> None:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise PublishFailed("the bus is unavailable")
        self.published.extend(entries)

    @property
    def event_ids(self) -> list[str]:
        return [json.loads(e["Detail"])["event_id"] for e in self.published]


class InMemoryClaimCheckStore:
    def __init__(self, bucket: str = "storewire-claim-checks") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> ClaimCheck:
        self.objects[key] = body
        return ClaimCheck(
            bucket=self.bucket, key=key, sha256=hashlib.sha256(body).hexdigest(), size=len(body)
        )

    def load(self, claim_check: ClaimCheck) -> bytes:
        body = self.objects[claim_check.key]
        if hashlib.sha256(body).hexdigest() != claim_check.sha256:
            raise PermanentError("claim check does not match")
        return body


class StaticSecrets:
    """Secrets by id; `stored` is what a forced fetch sees, `cached` what a cached get sees."""

    def __init__(self, current: str = DEV_SECRET, previous: str = "") -> None:
        self.stored: dict[str, dict[str, str]] = {
            SECRET_ID: {"current": current, "previous": previous}
        }
        self.cached: dict[str, dict[str, str]] = dict(self.stored)
        self.forced = 0

    def get(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, str]:
        if force_fetch:
            self.forced += 1
            self.cached[secret_id] = self.stored[secret_id]
        return self.cached[secret_id]


@dataclass
class Fakes:
    clock: FakeClock = field(default_factory=FakeClock)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    claim_checks: InMemoryClaimCheckStore = field(default_factory=InMemoryClaimCheckStore)
    secrets: StaticSecrets = field(default_factory=StaticSecrets)
    dedupe: InMemoryDedupeStore | None = None

    def __post_init__(self) -> None:
        if self.dedupe is None:
            self.dedupe = InMemoryDedupeStore(self.clock)

    def deps(self, **overrides: Any) -> IngestDeps:
        assert self.dedupe is not None
        values: dict[str, Any] = {
            "dedupe": self.dedupe,
            "publisher": self.publisher,
            "claim_checks": self.claim_checks,
            "secrets": self.secrets,
            "secret_ids": {"shopify": SECRET_ID},
            "clock": self.clock,
        }
        values.update(overrides)
        return IngestDeps(**values)
