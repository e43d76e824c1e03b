"""A fault-free run of a seeded history through the emulator: the oracle agrees with reality.

The emulator runs the real template.yaml with its fakes and the development secrets (the
defaults of `Secrets`). A 40-order history (seed 1) is prepared (stock over two locations with
scarce SKUs, channel listings, the storefront's orders, the PaymentIntents), every delivery
is posted in order, signed as its sender signs it, phase by phase (each phase drained, as the
days between checkout and a refund would); then the tracking updates for the labels bought.
`compare` must find nothing and no stock row may be oversold, mid-run or at the end. If the
oracle were wrong about the product, or the product about its contract, this fails with the
list of differences.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from storewire_local.emulator import Emulator
from storewire_local.reliability import oracle
from storewire_local.reliability.traffic import Delivery, History, Secrets, generate
from storewire_local.testing import EmulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
ORDERS = 40
SEED = 1
IDLE = 300.0


@pytest.fixture(scope="module")
def clean_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The real template.yaml with the development secrets (what `Secrets()` signs with)."""
    emu = Emulator(
        REPO_ROOT / "template.yaml",
        port=0,
        state_dir=tmp_path_factory.mktemp("storewire-clean-run"),
        fire_schedules=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    emu.start()
    handle = EmulatorHandle(emu)
    try:
        yield handle
    finally:
        handle.http.close()
        emu.stop()


def send(emulator: EmulatorHandle, deliveries: list[Delivery], oversold: list[str]) -> None:
    secrets = Secrets()
    for n, delivery in enumerate(deliveries):
        answer = emulator.http.post(
            delivery.path, content=delivery.body, headers=delivery.headers(secrets, time.time())
        )
        assert answer.status_code == 200, (delivery.topic, delivery.delivery_id, answer.text)
        if n % 25 == 24:
            oversold += oracle.oversold(emulator)


@pytest.fixture(scope="module")
def run(clean_emulator: EmulatorHandle) -> tuple[History, oracle.Observed, list[str]]:
    emulator = clean_emulator
    history = generate(SEED, ORDERS)
    mid_run: list[str] = []
    started = time.monotonic()
    with httpx.Client(timeout=60) as http:
        history.prepare(http, emulator)
        deliveries = history.deliveries
        for phase in sorted({d.phase for d in deliveries}):
            send(emulator, [d for d in deliveries if d.phase == phase], mid_run)
            emulator.wait_idle(IDLE)
        fakes = emulator.emu.info()["fakes"]
        tracking = history.tracking_deliveries(http, fakes["easypost"])
        send(emulator, tracking, mid_run)
        emulator.wait_idle(IDLE)
        observed = oracle.observe(emulator, http)
    print(f"clean run: {ORDERS} orders in {time.monotonic() - started:.1f} s")
    print(oracle.summary(observed))
    return history, observed, mid_run


def test_a_clean_run_ends_exactly_as_the_oracle_says(
    run: tuple[History, oracle.Observed, list[str]], clean_emulator: EmulatorHandle
) -> None:
    history, observed, mid_run = run

    assert oracle.compare(history, observed) == []
    assert mid_run == []
    assert oracle.oversold(clean_emulator) == []


def test_the_clean_run_exercised_every_path(
    run: tuple[History, oracle.Observed, list[str]],
) -> None:
    history, observed, _ = run
    figures = oracle.summary(observed)

    assert figures["double_effects"] == 0
    assert figures["oversold_rows"] == 0
    assert figures["backordered_lines"] > 0  # the scarce SKUs ran out
    assert figures["labels_bought"] > 0
    assert figures["releases"] > 0
    assert figures["restocks"] > 0
    assert figures["channel_pushes"] > 0
    assert history.tracked  # some labels were tracked
    assert figures["payments_confirmed"] == sum(1 for p in history.plans if p.paid)
