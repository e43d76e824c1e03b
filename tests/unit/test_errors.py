from __future__ import annotations

import pytest
from storewire import errors
from storewire.errors import http_status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.SignatureInvalid("x"), 401),
        (errors.StaleWebhook("x"), 401),
        (errors.MalformedPayload("x", fields=["a"]), 400),
        (errors.PayloadTooLarge("x"), 413),
        (errors.UnknownSource("x"), 404),
        (errors.DeliveryInProgress("x"), 409),
        (errors.PublishFailed("x"), 503),
        (errors.RetryableError("x"), 503),
        (errors.PermanentError("x"), 500),
        (errors.ConfigurationError("x"), 500),
        (errors.StorewireError("x"), 500),
        (ValueError("x"), 500),
    ],
)
def test_given_an_error_type_when_mapped_then_its_http_status_follows_the_type(
    error: BaseException, status: int
) -> None:
    assert http_status(error) == status


def test_given_the_same_type_when_the_message_differs_then_the_status_does_not() -> None:
    assert http_status(errors.SignatureInvalid("body too large")) == 401
    assert http_status(errors.PayloadTooLarge("bad signature")) == 413


def test_given_the_hierarchy_when_inspected_then_it_matches_the_documented_tree() -> None:
    assert issubclass(errors.SignatureInvalid, errors.InvalidWebhook)
    assert issubclass(errors.StaleWebhook, errors.InvalidWebhook)
    assert issubclass(errors.MalformedPayload, errors.InvalidWebhook)
    assert issubclass(errors.PayloadTooLarge, errors.InvalidWebhook)
    assert issubclass(errors.UnknownSource, errors.InvalidWebhook)
    assert issubclass(errors.PublishFailed, errors.RetryableError)
    assert issubclass(errors.ConfigurationError, errors.PermanentError)
    for name in ("InvalidWebhook", "DeliveryInProgress", "RetryableError", "PermanentError"):
        assert issubclass(getattr(errors, name), errors.StorewireError)
        assert name in (errors.__doc__ or "")
