"""The webhook ingestion service: raw request in, canonical events on the bus, once.

Pure of AWS: every dependency is a port (`storewire.ports`), so the same function runs on
Lambda with the real adapters and in unit tests with in-memory fakes. The steps, and the
answer each failure gets (by type, see `storewire.errors`):

1. size check ............................... PayloadTooLarge (413)
2. signature, current then previous secret .. SignatureInvalid (401)
3. replay tolerance (X-...-Triggered-At) .... StaleWebhook (401)
4. parse + normalise ........................ MalformedPayload (400) / ignored topic (200)
5. dedupe claim ............................. duplicate (200, no events) / DeliveryInProgress (409)
6. claim-check oversize events, publish ..... PublishFailed (503): the claim is released first
7. complete the claim ....................... accepted (200)

Event ids are deterministic, so the sender's retry after a failed publish emits the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from storewire.domain.events import (
    MAX_ENTRY_BYTES,
    BusEntry,
    CanonicalEvent,
    entry_size,
    to_bus_entry,
)
from storewire.errors import (
    ConfigurationError,
    DeliveryInProgress,
    MalformedPayload,
    PayloadTooLarge,
    SignatureInvalid,
    StaleWebhook,
)
from storewire.ports import (
    ClaimCheckStore,
    ClaimOutcome,
    DedupeStore,
    EventPublisher,
    SecretProvider,
)
from storewire.sources import Headers, Normalised, SourceAdapter, WebhookSecrets, get_source

logger = logging.getLogger(__name__)

DEFAULT_DEDUPE_TTL_SECONDS = 259200
DEFAULT_MAX_BODY_BYTES = 4194304
MAX_DELIVERY_ID_BYTES = 1024
"""Longer delivery ids are refused (400): the dedupe key must fit DynamoDB's 2048-byte key."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IngestDeps:
    """The ports and limits `ingest_webhook` works with (wired once per cold start)."""

    dedupe: DedupeStore
    publisher: EventPublisher
    claim_checks: ClaimCheckStore
    secrets: SecretProvider
    secret_ids: Mapping[str, str]
    dedupe_ttl_seconds: int = DEFAULT_DEDUPE_TTL_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_age_seconds: int = DEFAULT_DEDUPE_TTL_SECONDS
    clock: Callable[[], datetime] = _utcnow
    sources: Callable[[str], SourceAdapter] = get_source


@dataclass(frozen=True)
class IngestResult:
    """A successful answer: accepted, duplicate or ignored (all 200)."""

    status: Literal["accepted", "duplicate", "ignored"]
    source: str
    topic: str
    shop: str
    delivery_id: str
    events: tuple[CanonicalEvent, ...] = field(default=())

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(e.event_id for e in self.events)

    @property
    def claim_checked(self) -> int:
        return sum(1 for e in self.events if e.claim_check is not None)

    def body(self) -> dict[str, Any]:
        """The JSON answer body."""
        if self.status == "accepted":
            return {"status": "accepted", "events": list(self.event_ids)}
        if self.status == "ignored":
            return {"status": "ignored", "topic": self.topic}
        return {"status": "duplicate"}


def dedupe_key(source: str, delivery_id: str) -> str:
    return f"webhook#{source}#{delivery_id}"


def claim_check_key(event_id: str) -> str:
    return f"claim-checks/{event_id}.json"


def _secrets(deps: IngestDeps, source: str, *, force_fetch: bool) -> WebhookSecrets:
    secret_id = deps.secret_ids.get(source)
    if not secret_id:
        raise ConfigurationError(f"no webhook secret configured for source {source!r}")
    value = deps.secrets.get(secret_id, force_fetch=force_fetch)
    current = value.get("current") if isinstance(value, Mapping) else None
    previous = value.get("previous") if isinstance(value, Mapping) else None
    if not isinstance(current, str) or not current:
        raise ConfigurationError(f"the {source} webhook secret has no 'current' value")
    return WebhookSecrets(current=current, previous=previous if isinstance(previous, str) else "")


def _verify(adapter: SourceAdapter, headers: Headers, body: bytes, deps: IngestDeps) -> None:
    try:
        adapter.verify(headers, body, _secrets(deps, adapter.name, force_fetch=False))
    except SignatureInvalid:
        # The cached secret may predate a rotation: look once more at the stored one.
        adapter.verify(headers, body, _secrets(deps, adapter.name, force_fetch=True))


def _normalise(adapter: SourceAdapter, headers: Headers, body: bytes) -> Normalised:
    """The adapter's normalisation, where a value the payload model lets through but a
    canonical event refuses (a currency that is not ISO 4217, an amount finer than its minor
    unit, a negative quantity) is `MalformedPayload` too: a 5xx would make the sender retry
    a body that can never succeed. JSON nested too deep to parse is refused the same way."""
    try:
        return adapter.normalise(headers, body)
    except (ValueError, ArithmeticError, RecursionError) as error:
        if isinstance(error, ValidationError):
            problems = error.errors(include_url=False, include_input=False)
            fields = [".".join(str(p) for p in e["loc"]) or "(body)" for e in problems]
            details = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, problems, strict=True))
        else:
            fields, details = ["(body)"], type(error).__name__
        raise MalformedPayload(
            f"{adapter.name} payload does not fit its canonical event: {details[:1000]}",
            fields=fields,
        ) from None


def prepare_entries(
    events: Sequence[CanonicalEvent], claim_checks: ClaimCheckStore
) -> tuple[tuple[CanonicalEvent, ...], list[BusEntry]]:
    """The bus entries for `events`, storing the data of any entry over 256 KB first."""
    published: list[CanonicalEvent] = []
    entries: list[BusEntry] = []
    for event in events:
        entry = to_bus_entry(event)
        if entry_size(entry) > MAX_ENTRY_BYTES:
            ref = claim_checks.put(claim_check_key(event.event_id), event.data_json())
            event = event.with_claim_check(ref)
            entry = to_bus_entry(event)
        published.append(event)
        entries.append(entry)
    return tuple(published), entries


def ingest_webhook(
    source: str, headers: Mapping[str, str], raw_body: bytes, deps: IngestDeps
) -> IngestResult:
    """Verify, dedupe, normalise and publish one webhook delivery (see the module docstring)."""
    adapter = deps.sources(source)
    if len(raw_body) > deps.max_body_bytes:
        raise PayloadTooLarge(
            f"body is {len(raw_body)} bytes; the limit is {deps.max_body_bytes} bytes"
        )
    request_headers = headers if isinstance(headers, Headers) else Headers(headers)
    _verify(adapter, request_headers, raw_body, deps)

    sent_at = adapter.describe(request_headers).sent_at
    if deps.max_age_seconds and sent_at is not None:
        age = deps.clock() - sent_at
        if age > timedelta(seconds=deps.max_age_seconds):
            raise StaleWebhook(
                f"delivery was sent {int(age.total_seconds())} s ago; "
                f"the tolerance is {deps.max_age_seconds} s"
            )

    normalised = _normalise(adapter, request_headers, raw_body)
    result = IngestResult(
        status="ignored",
        source=source,
        topic=normalised.topic,
        shop=normalised.shop,
        delivery_id=normalised.delivery_id,
    )
    if normalised.ignored:
        return result
    if len(normalised.delivery_id.encode("utf-8", "surrogatepass")) > MAX_DELIVERY_ID_BYTES:
        raise MalformedPayload(
            f"the delivery id is longer than {MAX_DELIVERY_ID_BYTES} bytes", fields=["delivery_id"]
        )

    key = dedupe_key(source, normalised.delivery_id)
    outcome = deps.dedupe.claim(key, deps.dedupe_ttl_seconds)
    if outcome is ClaimOutcome.DUPLICATE:
        return replace(result, status="duplicate")
    if outcome is ClaimOutcome.IN_PROGRESS:
        raise DeliveryInProgress(
            f"delivery {normalised.delivery_id} is being processed; retry later"
        )

    try:
        events, entries = prepare_entries(normalised.events, deps.claim_checks)
        deps.publisher.publish(entries)
    except BaseException:
        try:
            deps.dedupe.release(key)
        except Exception:
            # The claim's lease expires on its own; the sender's retry then proceeds.
            logger.exception("could not release the dedupe claim", extra={"dedupe_key": key})
        raise

    try:
        deps.dedupe.complete(key, [e.event_id for e in events])
    except Exception:
        # The events are on the bus: answer 200. A retry after the lease republishes the
        # same event ids, which consumers drop as duplicates.
        logger.exception("could not complete the dedupe claim", extra={"dedupe_key": key})
    return replace(result, status="accepted", events=events)
