"""The one outbound HTTP client layer every connector uses (Stripe, Shopify Admin, carriers).

`HttpClient` wraps an `httpx.Client` (tests pass one on `httpx.MockTransport`) and adds:

* connect / read timeouts (on the `httpx.Client`; `default_timeout()` builds them), each
  attempt's timeout also capped by the time left before the caller's `Deadline`;
* bounded retries with exponential backoff and full jitter
  (`delay = uniform(0, min(max_delay, base_delay * 2**retry))`) for retryable failures:
  connect errors, timeouts, dropped connections, 408, 409, 429 and 5xx;
* `Retry-After` honoured (seconds or an HTTP date) when it fits before the deadline and under
  `max_retry_after`; when it does not, the call fails at once as retryable, carrying
  `retry_after`, so the queue redelivers later instead of the Lambda sleeping to its timeout;
* the same `Idempotency-Key` on every attempt of one call (the key is the caller's, derived
  from the event, so a redelivered message reuses it too);
* typed errors (mapped by type, never by message)::

    UpstreamError                 a third party failed or refused
     + RetryableUpstreamError     retries exhausted / would overrun the deadline (RetryableError)
     + PermanentUpstreamError     4xx except 408, 409, 429: retrying cannot help (PermanentError)

A POST without an idempotency key is retried only when the request surely never reached the
server (connect errors, pool timeouts) unless the caller says it is safe (`idempotent=True`,
e.g. a read-only GraphQL query).

Logs carry the service, method, path, status, attempt and delay; never headers, query
strings or bodies (they hold credentials and personal data).

Every attempt is timed and reported to an `Observer` (`observer=` here, else the process-wide
one set with `set_observer`): `(service, method, status or None, seconds)`. The handlers
plug `storewire.observability.ConsumerTelemetry.observe_http` in (the `ThirdPartyLatency`
metric); this module stays free of Powertools.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from storewire.errors import PermanentUpstreamError, RetryableUpstreamError, UpstreamError

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


# --------------------------------------------------------------------------- errors
# The UpstreamError hierarchy lives in storewire.errors; re-exported here for callers.

__all__ = [
    "Credential",
    "Deadline",
    "HttpClient",
    "Observer",
    "PermanentUpstreamError",
    "RetryAfter",
    "RetryPolicy",
    "RetryableUpstreamError",
    "UpstreamError",
    "credential",
    "default_timeout",
    "is_retryable_status",
    "parse_retry_after",
    "set_observer",
    "with_fresh_credential",
]


Observer = Callable[[str, str, int | None, float], None]
"""Told of every outbound attempt: (service, method, HTTP status or None, seconds taken)."""

_observer: Observer | None = None


def set_observer(observer: Observer | None) -> None:
    """The process-wide observer of clients built without `observer=` (None: none)."""
    global _observer
    _observer = observer


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. `max_attempts` counts the first attempt."""

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 10.0
    """A `Retry-After` longer than this fails the call at once (the queue retries later)."""

    def backoff(self, retry: int, rand: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**retry)]."""
        cap = min(self.max_delay, self.base_delay * float(2**retry))
        return float(rand()) * cap


def default_timeout(connect: float = 3.05, read: float = 10.0) -> httpx.Timeout:
    """Connect / read / write / pool timeouts for a connector's `httpx.Client`."""
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


class Deadline:
    """The time by which an outbound call must have finished (e.g. the Lambda's remaining
    time minus a reserve). Handlers `reset` it per invocation; clients read `remaining`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at: float | None = None

    def reset(self, seconds_from_now: float | None) -> None:
        self._at = None if seconds_from_now is None else self._clock() + seconds_from_now

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None when there is no deadline."""
        return None if self._at is None else max(0.0, self._at - self._clock())


@dataclass(frozen=True)
class RetryAfter:
    """Returned by a response `inspect` hook: retry this (2xx) answer after `seconds`."""

    seconds: float
    reason: str


ErrorDescriber = Callable[[httpx.Response], tuple[str | None, str]]
"""(vendor error code, message) of an error response; a connector's own parser."""

ResponseInspector = Callable[[httpx.Response], RetryAfter | None]


def _generic_error(response: httpx.Response) -> tuple[str | None, str]:
    return None, f"HTTP {response.status_code}"


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = now() if now is not None else datetime.now(UTC)
        seconds = (when - current).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------- the client

_SAFE_TO_RESEND = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that prove the request never reached the server."""


class HttpClient:
    """Retrying, typed-error HTTP for one third-party service (see the module docstring)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        service: str,
        policy: RetryPolicy | None = None,
        deadline: Deadline | None = None,
        describe_error: ErrorDescriber = _generic_error,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        observer: Observer | None = None,
    ) -> None:
        self._client = client
        self._observer = observer
        self.service = service
        self.policy = policy or RetryPolicy()
        self.deadline = deadline or Deadline()
        self._describe = describe_error
        self._sleep = sleep
        self._rand = rand

    def close(self) -> None:
        self._client.close()

    def _observe(self, method: str, status: int | None, seconds: float) -> None:
        observer = self._observer or _observer
        if observer is None:
            return
        try:
            observer(self.service, method, status, seconds)
        except Exception:  # telemetry never fails a call
            logger.warning("HTTP observer failed", exc_info=True)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        idempotency_header: str = "Idempotency-Key",
        idempotent: bool | None = None,
        inspect: ResponseInspector | None = None,
    ) -> httpx.Response:
        """Send, retrying what is retryable; the 2xx/3xx response or a typed `UpstreamError`."""
        method = method.upper()
        request_headers = dict(headers or {})
        if idempotency_key is not None:
            request_headers[idempotency_header] = idempotency_key
        safe = (
            idempotent
            if idempotent is not None
            else (method in IDEMPOTENT_METHODS or idempotency_key is not None)
        )
        path = httpx.URL(url).path
        policy = self.policy
        attempt = 0
        while True:
            attempt += 1
            remaining = self.deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise RetryableUpstreamError(
                    f"{self.service} {method} {path}: no time left before the deadline",
                    service=self.service,
                    attempts=attempt - 1,
                )
            options: dict[str, Any] = {}
            if remaining is not None:
                configured = self._client.timeout
                options["timeout"] = httpx.Timeout(
                    connect=_cap(configured.connect, remaining),
                    read=_cap(configured.read, remaining),
                    write=_cap(configured.write, remaining),
                    pool=_cap(configured.pool, remaining),
                )
            failure: RetryableUpstreamError
            server_hint: float | None = None
            try:
                request = self._client.build_request(
                    method,
                    url,
                    headers=request_headers,
                    params=params,
                    data=data,
                    json=json,
                    **options,
                )
                started = time.perf_counter()
                try:
                    response = self._client.send(request)
                except httpx.TransportError:
                    self._observe(method, None, time.perf_counter() - started)
                    raise
                self._observe(method, response.status_code, time.perf_counter() - started)
            except httpx.TransportError as error:
                kind = type(error).__name__
                failure = RetryableUpstreamError(
                    f"{self.service} {method} {path}: {kind}",
                    service=self.service,
                    code=kind,
                    attempts=attempt,
                )
                if not safe and not isinstance(error, _SAFE_TO_RESEND):
                    raise failure from error
            else:
                status = response.status_code
                if status < 400:
                    hint = inspect(response) if inspect is not None else None
                    if hint is None:
                        return response
                    server_hint = hint.seconds
                    failure = RetryableUpstreamError(
                        f"{self.service} {method} {path}: {hint.reason}",
                        service=self.service,
                        status=status,
                        code=hint.reason,
                        attempts=attempt,
                        retry_after=hint.seconds,
                    )
                else:
                    response.read()
                    code, message = self._describe(response)
                    if not is_retryable_status(status):
                        raise PermanentUpstreamError(
                            f"{self.service} {method} {path}: {status} {message}",
                            service=self.service,
                            status=status,
                            code=code,
                            attempts=attempt,
                        )
                    server_hint = parse_retry_after(response.headers.get("Retry-After"))
                    failure = RetryableUpstreamError(
                        f"{self.service} {method} {path}: {status} {message}",
                        service=self.service,
                        status=status,
                        code=code,
                        attempts=attempt,
                        retry_after=server_hint,
                    )
                    if not safe and status not in (429, 503):
                        # A 5xx after a non-idempotent request may have had effects.
                        raise failure
            if attempt >= policy.max_attempts:
                raise failure
            delay = policy.backoff(attempt - 1, self._rand)
            if server_hint is not None:
                if server_hint > policy.max_retry_after:
                    raise failure
                delay = max(delay, server_hint)
            remaining = self.deadline.remaining()
            if remaining is not None and delay >= remaining:
                raise failure
            logger.warning(
                "retrying %s %s %s",
                self.service,
                method,
                path,
                extra={
                    "service": self.service,
                    "method": method,
                    "path": path,
                    "status": failure.status,
                    "reason": failure.code,
                    "attempt": attempt,
                    "delay_seconds": round(delay, 3),
                },
            )
            self._sleep(delay)


Credential = Callable[[bool], str]
"""The current API credential; called with True to bypass caches (after a 401: rotation)."""


def credential(value: str | Credential) -> Credential:
    """A `Credential` from a fixed value (tests, configuration) or an existing provider."""
    if not isinstance(value, str):
        return value

    def fixed(refresh: bool = False) -> str:
        return value

    return fixed


def with_fresh_credential[T](call: Callable[[str], T], current: Credential) -> T:
    """`call(credential)`; on a 401, once more with a re-read credential if it changed.

    A rotated key would otherwise make every record a permanent failure until the next
    cold start: the caller's cache still holds the revoked key.
    """
    key = current(False)
    try:
        return call(key)
    except PermanentUpstreamError as error:
        if error.status != 401:
            raise
        fresh = current(True)
        if fresh == key:
            raise
        return call(fresh)


def _cap(configured: float | None, remaining: float) -> float:
    return remaining if configured is None else min(configured, remaining)
