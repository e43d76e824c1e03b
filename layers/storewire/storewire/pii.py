"""Personal data masked in logs (invariant 7).

Every handler builds its Powertools `Logger` with `logger_formatter=PiiMaskingFormatter()`:
each structured log line is masked just before it is serialised, whatever put the data
there (the message, `extra=`, `append_keys`, an exception's text):

- a value under a key that names personal data (`email`, `phone`, `first_name`, `address1`,
  `shipping_address`, ...) is replaced by `MASK`, whatever it is (a string, a dict, a list);
- in every other string, email addresses and phone numbers (international `+...` numbers and
  separated North American ones) are replaced by `MASK`.

Identifiers (order, customer, contact ids) are not personal data here and stay readable, so a
log line can still be followed by its correlation id. `install_root_masking` adds the same
masking, as a `logging.Filter`, to the root logger's handlers for the library modules'
`logging.getLogger(__name__)` records that do not go through Powertools.

This is the "equivalent" of Powertools data masking: `DataMasking.erase` would do the key
part, but it is a separate extra (and its encryption half needs the aws-encryption-sdk); a
formatter that masks both keys and patterns costs one walk of the log dict per line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

MASK = "*****"

PII_KEYS: frozenset[str] = frozenset(
    {
        "email",
        "emails",
        "contact_email",
        "customer_email",
        "phone",
        "phone_number",
        "mobile",
        "name",
        "first_name",
        "last_name",
        "firstname",
        "lastname",
        "full_name",
        "company",
        "address",
        "address1",
        "address2",
        "street1",
        "street2",
        "zip",
        "postal_code",
        "shipping_address",
        "billing_address",
        "default_address",
        "addresses",
        "to_address",
        "from_address",
        "customer",
        "note",
        "browser_ip",
        "ip",
    }
)
"""Keys whose values are personal data, compared case-insensitively."""

EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_PATTERN = re.compile(
    r"(?<![\w])\+\d[\d\s().-]{6,}\d(?![\w])"  # international: +1 613-555-0199, +16135550199
    r"|(?<![\w])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?![\w])"  # 613-555-0199, (613) 555 0199
)


def mask_text(text: str) -> str:
    """`text` with every email address and phone number replaced by `MASK`."""
    if "@" in text:
        text = EMAIL_PATTERN.sub(MASK, text)
    return PHONE_PATTERN.sub(MASK, text)


_JSON_SCALARS = (int, float, bool, type(None))


def mask_value(value: Any, key: str | None = None) -> Any:
    """`value` with personal data masked: by `key`, then recursively (keys too), then by
    pattern. What JSON cannot hold as it is (a datetime, a Decimal, an exception, a model)
    becomes its masked `str()`, which is what the log serialiser would write for it."""
    if key is not None and key.lower() in PII_KEYS and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Mapping):
        return {mask_text(str(k)): mask_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(v) for v in value]
    return mask_text(str(value))


class PiiMaskingFormatter(LambdaPowertoolsFormatter):
    """The Powertools JSON formatter, masking personal data in every line it writes.

    The whole log dict is masked before it is serialised, every key and every value, so
    the serialised line needs no second pass."""

    def serialize(self, log: Any) -> str:
        return super().serialize(log=mask_value(dict(log) if isinstance(log, Mapping) else log))


class PiiMaskingFilter(logging.Filter):
    """A `logging.Filter` that masks a record's message, extras and exception text."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.msg, Mapping) and not record.args:
                record.msg = mask_value(record.msg)
            else:
                record.msg = mask_text(record.getMessage())
                record.args = ()
        except Exception:  # a message that cannot be rendered is left to logging to report
            return True
        for name, value in list(record.__dict__.items()):
            if name not in self._STANDARD:
                record.__dict__[name] = mask_value(value, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


PII_FILTER = PiiMaskingFilter()


def install_root_masking() -> None:
    """Add `PII_FILTER` to the root logger's handlers and to `logging.lastResort` (once)."""
    handlers = [*logging.getLogger().handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if PII_FILTER not in handler.filters:
            handler.addFilter(PII_FILTER)
