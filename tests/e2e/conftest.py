"""Shared fixtures for the end-to-end suite: the emulator, run over HTTP on loopback.

``emulator`` (module scope) runs the REAL ``template.yaml`` at the repo root; tests that use it
fail with a clear message while that file is missing. ``fixture_emulator`` runs the emulator's
own fixture graph (``tests/e2e/fixtures/template.yaml``).

Both yield an :class:`EmulatorHandle`: ``api_url``, ``aws_endpoint_url``, ``session`` /
``client(service)`` bound to moto, ``queue_url(logical_id)``, ``peek(logical_id)`` (every message,
read without receiving it), ``drain(logical_id)`` (receive + delete), ``events()`` (what was put
on the bus), ``wait_idle()``, ``faults(...)`` and the underlying ``Emulator`` as ``.emu``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from storewire_local.emulator import Emulator
from storewire_local.testing import EmulatorHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = REPO_ROOT / "template.yaml"
FIXTURE_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "template.yaml"


@pytest.fixture(autouse=True, scope="session")
def _moto_answers_verified() -> Iterator[None]:
    """Every DynamoDB answer the emulator's fast path writes is also checked against moto's
    own serialization, across the whole end-to-end suite (`moto_patches.VERIFY`)."""
    from storewire_local.emulator import moto_patches

    moto_patches.VERIFY = True
    try:
        yield
    finally:
        moto_patches.VERIFY = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


def _run(template: Path, state_dir: Path, **kwargs: Any) -> Iterator[EmulatorHandle]:
    emu = Emulator(template, port=0, state_dir=state_dir, fire_schedules=False, **kwargs)
    emu.start()
    handle = EmulatorHandle(emu)
    try:
        yield handle
    finally:
        handle.http.close()
        emu.stop()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The emulator running the real template.yaml at the repo root."""
    if not REAL_TEMPLATE.is_file():
        pytest.fail(
            f"{REAL_TEMPLATE} does not exist yet: the e2e tests of the real graph need the SAM "
            "template at the repo root (see docs/architecture.md)",
            pytrace=False,
        )
    yield from _run(
        REAL_TEMPLATE,
        tmp_path_factory.mktemp("storewire"),
        env={"SHOPIFY_WEBHOOK_SECRET": "shpss_e2e_secret", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def fixture_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The emulator running the fixture graph under tests/e2e/fixtures/."""
    yield from _run(
        FIXTURE_TEMPLATE,
        tmp_path_factory.mktemp("storewire-fixture"),
        env={
            "FIXTURE_WEBHOOK_SECRET": "fixture-from-env",
            "FIXTURE_WEBHOOK_SECRET_PREVIOUS": "fixture-previous",
            "PATH": "/usr/bin:/bin",
        },
    )
