"""Personal data is masked in every log line (invariant 7): `storewire.pii`."""

from __future__ import annotations

import io
import json
import logging

import pytest
from aws_lambda_powertools.logging import Logger
from storewire.pii import MASK, PiiMaskingFilter, PiiMaskingFormatter, mask_text, mask_value

EMAIL = "ada.lovelace+shop@example.co.uk"
PHONE = "+44 20 7946 0958"


def test_mask_text_hides_emails_and_phones_but_keeps_ids() -> None:
    text = f"contact {EMAIL} on {PHONE} or 613-555-0199 for order 5745289347382"
    masked = mask_text(text)
    assert EMAIL not in masked
    assert "7946" not in masked
    assert "555-0199" not in masked
    assert "5745289347382" in masked  # an id is not personal data


def test_mask_value_masks_by_key_recursively() -> None:
    value = {
        "order_id": "shopify:s:1",
        "customer": {"first_name": "Ada"},
        "lines": [{"sku": "SW-1", "shipping_address": {"address1": "12 Analytical Row"}}],
        "data": {"First_Name": "Ada", "LAST_NAME": "Lovelace", "city_note": f"see {EMAIL}"},
    }
    masked = mask_value(value)
    dumped = json.dumps(masked)
    for secret in ("Ada", "Lovelace", "12 Analytical Row", EMAIL):
        assert secret not in dumped
    assert masked["order_id"] == "shopify:s:1"
    assert masked["lines"][0]["sku"] == "SW-1"
    assert masked["customer"] == MASK


@pytest.fixture
def captured() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    logger = Logger(
        service="pii_test",
        logger_formatter=PiiMaskingFormatter(),
        logger_handler=logging.StreamHandler(stream),
    )
    return logger, stream


def test_powertools_logger_lines_are_masked(captured: tuple[Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.append_keys(email=EMAIL, order_id="o-1")
    logger.info(f"upserting {EMAIL}", extra={"phone": PHONE, "full_name": "Ada Lovelace"})
    logger.info({"message": "dict", "shipping_address": {"address1": "12 Analytical Row"}})
    try:
        raise ValueError(f"HubSpot refused {EMAIL}")
    except ValueError:
        logger.exception("failed for %s", PHONE)
    logger.remove_keys(["email"])
    output = stream.getvalue()
    assert output.count("\n") == 3
    for secret in (EMAIL, PHONE, "Ada Lovelace", "12 Analytical Row"):
        assert secret not in output
    first = json.loads(output.splitlines()[0])
    assert first["order_id"] == "o-1"
    assert first["email"] == MASK


def test_the_filter_masks_stdlib_records() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PiiMaskingFilter())
    log = logging.getLogger("storewire.test_pii")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("contact %s", EMAIL, extra={"first_name": "Ada"})
        try:
            raise RuntimeError(f"phone {PHONE}")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert EMAIL not in output
    assert PHONE not in output
    assert "boom" in output
    assert "RuntimeError" in output


def test_keys_objects_and_escaped_text_are_masked_in_the_line() -> None:
    # The line is masked before it is serialised: keys too, objects by the text the log
    # serialiser would write for them, and text JSON escapes (a phone after a newline).
    class Contact:
        def __str__(self) -> str:
            return f"Contact({EMAIL})"

    stream = io.StringIO()
    logger = Logger(
        service="pii_test_objects",
        logger_formatter=PiiMaskingFormatter(),
        logger_handler=logging.StreamHandler(stream),
    )
    logger.info(
        "lookup",
        extra={
            "by_email": {EMAIL: 1},
            "contact": Contact(),
            "note_text": f"call back:\n{PHONE}",
            "attempts": 3,
            "ok": True,
        },
    )

    output = stream.getvalue()
    for secret in (EMAIL, "7946 0958"):
        assert secret not in output
    line = json.loads(output)
    assert line["by_email"] == {MASK: 1}
    assert line["contact"] == f"Contact({MASK})"
    assert (line["attempts"], line["ok"]) == (3, True)
