"""Build the API Gateway HTTP API (payload v2) sample events from the raw Shopify payloads.

`python events/generate.py` rewrites `events/shopify_<topic>.json` from
`events/payloads/shopify/<topic>.json`, signed with the development default secret.
`tests/unit/test_sample_events.py` fails when the committed files drift from this output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storewire.sources.shopify import signed_headers

EVENTS_DIR = Path(__file__).resolve().parent
PAYLOADS_DIR = EVENTS_DIR / "payloads" / "shopify"
DEV_SECRET = "shpss_storewire_dev_secret"  # noqa: S105 - the documented development default
SHOP = "storewire-demo.myshopify.com"

# topic -> (X-Shopify-Webhook-Id, X-Shopify-Event-Id, X-Shopify-Triggered-At)
SAMPLES: dict[str, tuple[str, str, datetime]] = {
    "orders/create": (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "98880550-7158-44d4-b7cd-2c97c8a091b5",
        datetime(2026, 11, 20, 15, 15, 33, 401652, tzinfo=UTC),
    ),
    "orders/paid": (
        "3e1f7a52-6c1d-4a0e-9d5b-0f2c8e4b7a19",
        "5d2c9b8a-1e3f-4a6b-8c7d-9e0f1a2b3c4d",
        datetime(2026, 11, 20, 15, 17, 6, 118204, tzinfo=UTC),
    ),
    "orders/updated": (
        "a7c3e9f1-2b4d-4e6f-8a0b-1c3d5e7f9a2b",
        "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        datetime(2026, 11, 21, 14, 42, 19, 2311, tzinfo=UTC),
    ),
    "orders/cancelled": (
        "c9d8e7f6-a5b4-4c3d-9e2f-1a0b9c8d7e6f",
        "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
        datetime(2026, 11, 22, 21, 20, 48, 770015, tzinfo=UTC),
    ),
    "refunds/create": (
        "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b",
        "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
        datetime(2026, 11, 25, 16, 30, 13, 250198, tzinfo=UTC),
    ),
    "customers/create": (
        "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a",
        "8c9d0e1f-2a3b-4c4d-9e5f-6a7b8c9d0e1f",
        datetime(2026, 11, 20, 15, 12, 6, 84522, tzinfo=UTC),
    ),
    "customers/update": (
        "e2f3a4b5-c6d7-4e8f-9a0b-c1d2e3f4a5b6",
        "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
        datetime(2026, 11, 23, 13, 45, 20, 512980, tzinfo=UTC),
    ),
    "customers/data_request": (
        "5c0f8e2a-9d41-4b7e-a3c6-1f2e3d4c5b6a",
        "6d1a9f3b-0e52-4c8f-b4d7-2a3b4c5d6e7f",
        datetime(2026, 11, 24, 9, 12, 3, 118530, tzinfo=UTC),
    ),
    "customers/redact": (
        "7e2b0a4c-1f63-4d9a-85e8-3b4c5d6e7f80",
        "8f3c1b5d-2a74-4eab-96f9-4c5d6e7f8091",
        datetime(2026, 11, 24, 9, 20, 41, 602217, tzinfo=UTC),
    ),
    "shop/redact": (
        "904d2c6e-3b85-4fbc-a70a-5d6e7f8091a2",
        "a15e3d7f-4c96-40cd-b81b-6e7f8091a2b3",
        datetime(2026, 11, 25, 9, 0, 0, 7711, tzinfo=UTC),
    ),
}


def payload_path(topic: str) -> Path:
    return PAYLOADS_DIR / f"{topic.replace('/', '_')}.json"


def event_path(topic: str) -> Path:
    return EVENTS_DIR / f"shopify_{topic.replace('/', '_')}.json"


def compact(payload_file: Path) -> bytes:
    """The body Shopify would send: the payload as compact JSON (UTF-8)."""
    payload = json.loads(payload_file.read_text(encoding="utf-8"))
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def apigw_v2_event(
    topic: str,
    body: bytes,
    *,
    shop: str = SHOP,
    webhook_id: str,
    secret: str = DEV_SECRET,
    event_id: str | None = None,
    triggered_at: datetime | None = None,
    source: str = "shopify",
) -> dict[str, Any]:
    """A signed Shopify delivery as API Gateway HTTP API delivers it (payload format 2.0)."""
    when = triggered_at or datetime.now(UTC)
    headers = {
        k.lower(): v
        for k, v in signed_headers(
            topic,
            body,
            shop=shop,
            webhook_id=webhook_id,
            secret=secret,
            event_id=event_id,
            triggered_at=when,
        ).items()
    }
    headers |= {
        "accept": "*/*",
        "accept-encoding": "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
        "content-length": str(len(body)),
        "host": "abc123xyz9.execute-api.us-east-1.amazonaws.com",
        "user-agent": "Shopify-Captain-Hook",
        "x-forwarded-for": "34.23.145.87",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    path = f"/webhooks/{source}"
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": dict(sorted(headers.items())),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123xyz9",
            "domainName": "abc123xyz9.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123xyz9",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "34.23.145.87",
                "userAgent": "Shopify-Captain-Hook",
            },
            "requestId": f"req-{webhook_id[:8]}",
            "routeKey": "POST /webhooks/{source}",
            "stage": "$default",
            "time": when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(when.timestamp() * 1000),
        },
        "pathParameters": {"source": source},
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def build_samples() -> dict[Path, dict[str, Any]]:
    """Every sample event, by the file it belongs in."""
    return {
        event_path(topic): apigw_v2_event(
            topic,
            compact(payload_path(topic)),
            webhook_id=webhook_id,
            event_id=event_id,
            triggered_at=triggered_at,
        )
        for topic, (webhook_id, event_id, triggered_at) in SAMPLES.items()
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for path, event in build_samples().items():
        path.write_text(render(event), encoding="utf-8")
        print(f"wrote {path.relative_to(EVENTS_DIR.parent)}")


if __name__ == "__main__":
    main()
