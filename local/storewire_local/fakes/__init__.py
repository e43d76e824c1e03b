"""Local fakes of the third parties (never in the Lambda layer).

Each is a threaded HTTP server on loopback speaking the vendor's real request and response
shapes, keeping state, with a `/_fake/` control plane to inject faults (see `base`).

* ``stripe`` (`StripeFake`): PaymentIntents, refunds, Idempotency-Key, signed webhooks.
* ``shopify_admin`` (`ShopifyAdminFake`): the Admin GraphQL order/transactions query, with
  cost-based throttling.

``start_fakes(env)`` starts both (credentials from ``STRIPE_API_KEY`` / ``SHOPIFY_ADMIN_TOKEN``
in `env`, else the development defaults) and returns ``{name: base url}``; ``stop_fakes()``
stops what it started. The emulator writes the URLs into ``.storewire/local.json`` under
``fakes`` and points the functions at them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from .base import FakeServer
from .shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake
from .stripe import DEFAULT_API_KEY, StripeFake

__all__ = [
    "DEFAULT_ADMIN_TOKEN",
    "DEFAULT_API_KEY",
    "FakeServer",
    "ShopifyAdminFake",
    "StripeFake",
    "running_fakes",
    "start_fakes",
    "stop_fakes",
]

_lock = threading.Lock()
_running: dict[str, FakeServer] = {}


def start_fakes(env: Mapping[str, str] | None = None, host: str = "127.0.0.1") -> dict[str, str]:
    """Start the Stripe and Shopify Admin fakes (once); their base URLs by name."""
    env = env or {}
    with _lock:
        if not _running:
            fakes: list[FakeServer] = [
                StripeFake(host, api_key=env.get("STRIPE_API_KEY") or DEFAULT_API_KEY),
                ShopifyAdminFake(
                    host, access_token=env.get("SHOPIFY_ADMIN_TOKEN") or DEFAULT_ADMIN_TOKEN
                ),
            ]
            try:
                for fake in fakes:
                    fake.start()
                    _running[fake.name] = fake
            except BaseException:
                for fake in _running.values():
                    fake.stop()
                _running.clear()
                raise
        return {name: fake.url for name, fake in _running.items()}


def running_fakes() -> dict[str, FakeServer]:
    """The fakes `start_fakes` started, by name (tests reach into their state)."""
    with _lock:
        return dict(_running)


def stop_fakes() -> None:
    """Stop every fake `start_fakes` started."""
    with _lock:
        for fake in _running.values():
            fake.stop()
        _running.clear()
