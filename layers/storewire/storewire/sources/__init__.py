"""Inbound senders: one adapter per `/webhooks/{source}`, each verifying and normalising.

`get_source(name)` is the registry the ingestion service uses; an unknown name raises
`UnknownSource` (404).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from storewire.domain.events import CanonicalEvent
from storewire.errors import UnknownSource


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only HTTP headers (API Gateway v2 lowercases them anyway)."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._headers[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._headers

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


@dataclass(frozen=True)
class WebhookSecrets:
    """The signing secrets of one source: `previous` still verifies during a rotation."""

    current: str
    previous: str = ""

    def candidates(self) -> tuple[str, ...]:
        return tuple(s for s in (self.current, self.previous) if s)


@dataclass(frozen=True)
class Delivery:
    """What a sender's headers say about one delivery. Safe to log (no personal data)."""

    topic: str | None = None
    shop: str | None = None
    delivery_id: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Normalised:
    """A verified delivery turned into canonical events (none when the topic is ignored)."""

    topic: str
    shop: str
    delivery_id: str
    events: tuple[CanonicalEvent, ...] = ()
    ignored: bool = False


class SourceAdapter(Protocol):
    """Everything ingestion needs to know about one sender."""

    name: str

    def describe(self, headers: Headers) -> Delivery:
        """Read the delivery's identifying headers, tolerating any that are missing."""
        ...

    def verify(self, headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
        """Raise `SignatureInvalid` unless `body` was signed with one of `secrets`."""
        ...

    def normalise(self, headers: Headers, body: bytes) -> Normalised:
        """The canonical events of a verified delivery; `MalformedPayload` when it can't be."""
        ...


def get_source(name: str) -> SourceAdapter:
    """The adapter serving `/webhooks/{name}`."""
    from storewire.sources import easypost, shopify, stripe

    sources: dict[str, SourceAdapter] = {
        "shopify": shopify.ADAPTER,
        "stripe": stripe.ADAPTER,
        "easypost": easypost.ADAPTER,
    }
    try:
        return sources[name]
    except KeyError:
        raise UnknownSource(f"no webhook source named {name!r}") from None


def source_names() -> tuple[str, ...]:
    return ("shopify", "stripe", "easypost")
