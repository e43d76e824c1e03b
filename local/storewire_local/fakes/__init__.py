"""Local fakes of the third parties (never in the Lambda layer).

Each is a threaded HTTP server on loopback speaking the vendor's real request and response
shapes, keeping state, with a `/_fake/` control plane to inject faults (see `base`).

* ``stripe`` (`StripeFake`): PaymentIntents, refunds, Idempotency-Key, signed webhooks.
* ``shopify_admin`` (`ShopifyAdminFake`): the Admin GraphQL order/transactions query, with
  cost-based throttling.
* ``easypost`` (`EasyPostFake`): shipments, rates, label purchases, trackers, signed
  ``tracker.updated`` webhooks.
* ``hubspot`` (`HubSpotFake`): contacts and deals batch upserts, associations, the
  190-requests-per-10-s rate limit.

``start_fakes(env)`` starts the registered fakes (`FAKE_FACTORIES`; credentials from
``STRIPE_API_KEY`` / ``SHOPIFY_ADMIN_TOKEN`` in `env`, else the development defaults) and
returns ``{name: base url}`` (``EASYPOST_API_KEY`` / ``EASYPOST_WEBHOOK_SECRET`` and
``HUBSPOT_ACCESS_TOKEN`` likewise); ``stop_fakes()`` stops what it started. The emulator writes the
URLs into ``.storewire/local.json`` under ``fakes`` and points the functions at them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from .base import FakeServer
from .easypost import DEFAULT_API_KEY as DEFAULT_EASYPOST_API_KEY
from .easypost import DEFAULT_WEBHOOK_SECRET as DEFAULT_EASYPOST_WEBHOOK_SECRET
from .easypost import EasyPostFake
from .hubspot import DEFAULT_ACCESS_TOKEN as DEFAULT_HUBSPOT_ACCESS_TOKEN
from .hubspot import HubSpotFake
from .shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake
from .stripe import DEFAULT_API_KEY, StripeFake

__all__ = [
    "DEFAULT_ADMIN_TOKEN",
    "DEFAULT_API_KEY",
    "DEFAULT_EASYPOST_API_KEY",
    "DEFAULT_EASYPOST_WEBHOOK_SECRET",
    "DEFAULT_HUBSPOT_ACCESS_TOKEN",
    "FAKE_FACTORIES",
    "EasyPostFake",
    "FakeServer",
    "HubSpotFake",
    "ShopifyAdminFake",
    "StripeFake",
    "running_fakes",
    "start_fakes",
    "stop_fakes",
]

FakeFactory = Callable[[Mapping[str, str], str], FakeServer]
"""Builds a (not yet started) fake from the environment and the loopback host."""

FAKE_FACTORIES: dict[str, FakeFactory] = {
    "stripe": lambda env, host: StripeFake(
        host, api_key=env.get("STRIPE_API_KEY") or DEFAULT_API_KEY
    ),
    "shopify_admin": lambda env, host: ShopifyAdminFake(
        host, access_token=env.get("SHOPIFY_ADMIN_TOKEN") or DEFAULT_ADMIN_TOKEN
    ),
    "easypost": lambda env, host: EasyPostFake(
        host,
        api_key=env.get("EASYPOST_API_KEY") or DEFAULT_EASYPOST_API_KEY,
        webhook_secret=env.get("EASYPOST_WEBHOOK_SECRET") or DEFAULT_EASYPOST_WEBHOOK_SECRET,
    ),
    "hubspot": lambda env, host: HubSpotFake(
        host, access_token=env.get("HUBSPOT_ACCESS_TOKEN") or DEFAULT_HUBSPOT_ACCESS_TOKEN
    ),
}
"""Every fake the emulator can start, by name. To add one: register its factory here and map
the template parameter that carries its URL in `storewire_local.emulator.core.FAKE_PARAMETERS`."""

_lock = threading.Lock()
_running: dict[str, FakeServer] = {}


def start_fakes(
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    names: Iterable[str] | None = None,
) -> dict[str, str]:
    """Start the named fakes (default: every registered one) unless running; URLs by name."""
    env = env or {}
    wanted = list(FAKE_FACTORIES) if names is None else list(names)
    with _lock:
        started: list[tuple[str, FakeServer]] = []
        try:
            for name in wanted:
                if name in _running:
                    continue
                fake = FAKE_FACTORIES[name](env, host)
                fake.start()
                started.append((name, fake))
                _running[name] = fake
        except BaseException:
            for name, fake in started:
                fake.stop()
                _running.pop(name, None)
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
