"""Storewire's typed errors. Callers map them to answers by type, never by message text.

The hierarchy (HTTP status in brackets, as answered by `webhook_ingest`):

* StorewireError [500]
  + InvalidWebhook [400] - the request can never succeed as sent; nothing is stored
  |  + SignatureInvalid [401] - missing, malformed or wrong HMAC signature
  |  + StaleWebhook [401] - a delivery older than the replay tolerance
  |  + MalformedPayload [400] - body or required headers do not fit the topic's shape
  |  + PayloadTooLarge [413] - body over MAX_BODY_BYTES
  |  + UnknownSource [404] - no adapter for `/webhooks/{source}`
  + DeliveryInProgress [409] - the same delivery is being processed right now; retry later
  + RetryableError [503] - a dependency failed transiently; the sender should retry
  |  + PublishFailed [503] - the bus refused (some of) the events
  |  + RetryableUpstreamError [503] - a third party failed transiently; retries ran out
  |  + PrerequisiteMissing [503] - an event came before what it builds on (a payment before
  |     its reservation, an update before its order): SQS redelivers it; the DLQ if never
  + PermanentError [500] - a fault retrying will not fix (configuration, corrupt data)
  |  + ConfigurationError [500] - missing or invalid settings / secrets
  |  + PermanentUpstreamError [502] - a third party refused the request (4xx but 408/409/429)
  + UpstreamError [502] - base of the two above (`storewire.http`): `service`, `status`,
                          `code` (the vendor's), `attempts`, `retry_after`
"""

from __future__ import annotations

from collections.abc import Sequence


class StorewireError(Exception):
    """Base of every error Storewire raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidWebhook(StorewireError):
    """The webhook request is invalid as sent; retrying it unchanged cannot succeed."""

    status_code = 400


class SignatureInvalid(InvalidWebhook):
    """The signature header is missing, malformed, or matches no configured secret."""

    status_code = 401


class StaleWebhook(InvalidWebhook):
    """The delivery is older than the replay tolerance (dedupe could no longer catch it)."""

    status_code = 401


class MalformedPayload(InvalidWebhook):
    """The body is not JSON, or does not have the shape its topic requires."""

    status_code = 400

    def __init__(self, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)


class PayloadTooLarge(InvalidWebhook):
    """The body exceeds the configured maximum size."""

    status_code = 413


class UnknownSource(InvalidWebhook):
    """No source adapter is registered under this name."""

    status_code = 404


class DeliveryInProgress(StorewireError):
    """Another invocation holds the claim on this delivery; the sender should retry later."""

    status_code = 409


class RetryableError(StorewireError):
    """A transient failure of a dependency: answering 5xx makes the sender retry."""

    status_code = 503


class PublishFailed(RetryableError):
    """The event bus did not accept every event of the delivery."""

    status_code = 503


class PrerequisiteMissing(RetryableError):
    """The event came before what it builds on: retry it later, do not misapply it.

    A consumer raises it to fail the record; SQS redelivers it until the prerequisite
    exists, and its DLQ keeps it, with this reason, if it never does.
    """

    status_code = 503


class PermanentError(StorewireError):
    """A failure that retrying will not fix."""

    status_code = 500


class ConfigurationError(PermanentError):
    """Settings or secrets are missing or invalid."""

    status_code = 500


class UpstreamError(StorewireError):
    """A third-party API failed or refused a request (raised by `storewire.http`).

    `service` names the integration (`stripe`, `shopify_admin`), `status` the HTTP status
    (None for transport failures), `code` the vendor's error code when it gave one.
    """

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.attempts = attempts
        self.retry_after = retry_after


class RetryableUpstreamError(UpstreamError, RetryableError):
    """Transient: the attempts ran out (or would overrun the deadline); retry later."""

    status_code = 503


class PermanentUpstreamError(UpstreamError, PermanentError):
    """The third party refused the request as sent (bad key, unknown object, bad params)."""

    status_code = 502


def http_status(error: BaseException) -> int:
    """The HTTP status answered for `error`, decided by its type alone."""
    if isinstance(error, StorewireError):
        return type(error).status_code
    return 500
