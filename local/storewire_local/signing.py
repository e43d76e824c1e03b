"""Sign webhook payloads as the senders do (used by ``storewire send``)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

DEFAULT_SHOPIFY_SECRET = "shpss_storewire_dev_secret"  # noqa: S105 - the public dev default
SHOPIFY_API_VERSION = "2025-07"


def shopify_sign(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret, raw body)); the layer's own ``sign`` when it is importable."""
    try:
        from storewire.sources.shopify import sign
    except ImportError:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()
    return str(sign(body, secret))


def shopify_headers(
    topic: str,
    body: bytes,
    *,
    secret: str,
    shop: str,
    webhook_id: str,
    event_id: str | None = None,
    triggered_at: dt.datetime | None = None,
    tamper: bool = False,
) -> dict[str, str]:
    when = (triggered_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    signature = shopify_sign(body, secret)
    if tamper:
        signature = shopify_sign(body + b" ", secret)
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "X-Shopify-API-Version": SHOPIFY_API_VERSION,
    }


def payload_from_file(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """The raw body to send: a plain payload, or the ``body`` of an API Gateway event file.

    Also returns the event's headers (lower-cased), so callers can reuse its topic and shop.
    """
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return raw, {}
    if isinstance(data, dict) and "body" in data and isinstance(data.get("headers"), dict):
        body = data["body"] or ""
        if data.get("isBase64Encoded"):
            return base64.b64decode(body), _lower(data["headers"])
        return str(body).encode("utf-8"), _lower(data["headers"])
    return raw, {}


def _lower(headers: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}
