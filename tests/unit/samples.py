"""The committed Shopify samples (events/), read for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
DEV_SECRET = "shpss_storewire_dev_secret"
SHOPIFY_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "refunds/create",
    "customers/create",
    "customers/update",
    "customers/data_request",
    "customers/redact",
    "shop/redact",
)


def sample_event(topic: str) -> dict[str, Any]:
    """The committed API Gateway v2 sample event of a Shopify topic."""
    path = EVENTS_DIR / f"shopify_{topic.replace('/', '_')}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def sample_payload(topic: str) -> dict[str, Any]:
    """The committed raw Shopify payload of a topic."""
    path = EVENTS_DIR / "payloads" / "shopify" / f"{topic.replace('/', '_')}.json"
    return json.loads(path.read_text(encoding="utf-8"))
