"""Fixtures of the reliability suite: the emulator on the real template, over HTTP.

``emulator`` (module scope) runs the REAL ``template.yaml`` with explicit webhook secrets for
every source, so the fuzzing pass can sign requests exactly as each sender does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_support import SECRETS
from storewire_local.emulator import Emulator
from storewire_local.testing import EmulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = REPO_ROOT / "template.yaml"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The emulator running the real template.yaml at the repo root."""
    if not REAL_TEMPLATE.is_file():
        pytest.fail(f"{REAL_TEMPLATE} does not exist", pytrace=False)
    emu = Emulator(
        REAL_TEMPLATE,
        port=0,
        state_dir=tmp_path_factory.mktemp("storewire-reliability"),
        fire_schedules=False,
        env={
            "SHOPIFY_WEBHOOK_SECRET": SECRETS["shopify"],
            "STRIPE_WEBHOOK_SECRET": SECRETS["stripe"],
            "EASYPOST_WEBHOOK_SECRET": SECRETS["easypost"],
            "PATH": "/usr/bin:/bin",
        },
    )
    emu.start()
    handle = EmulatorHandle(emu)
    try:
        yield handle
    finally:
        handle.http.close()
        emu.stop()
