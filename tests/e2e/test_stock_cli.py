"""`storewire stock ...` and `storewire order ...` against the running emulator's moto."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from click.testing import Result
from storewire_local.cli import app
from storewire_local.state import write_state
from storewire_local.testing import EmulatorHandle
from test_stock_oversell import order_body, post
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def state_dir(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local.json pointing at the module's emulator, as `storewire local up` writes it."""
    directory = tmp_path_factory.mktemp("cli-state")
    write_state(directory, emulator.emu.info())
    return directory


def storewire(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, [*args, "--state-dir", str(state_dir)], catch_exceptions=False, env=dict(os.environ)
    )


def test_stock_set_and_show_per_location_by_priority(state_dir: Path) -> None:
    sku = f"SW-CLI-{uuid.uuid4().hex[:6]}"

    assert storewire(state_dir, "stock", "location", "east", "--priority", "1").exit_code == 0
    assert (
        storewire(state_dir, "stock", "set", sku, "--on-hand", "3", "--location", "east").exit_code
        == 0
    )
    assert storewire(state_dir, "stock", "set", sku, "--on-hand", "4").exit_code == 0
    shown = storewire(state_dir, "stock", "show", sku, "--json")

    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert {k: view[k] for k in ("sku", "on_hand", "reserved", "available")} == {
        "sku": sku,
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
    }
    assert [(loc["location"], loc["available"]) for loc in view["locations"]] == [
        ("east", 3),
        ("default", 4),
    ]


def test_stock_import_applies_good_rows_and_names_bad_lines(
    state_dir: Path, tmp_path: Path
) -> None:
    good, other = f"SW-IMP-{uuid.uuid4().hex[:6]}", f"SW-IMP-{uuid.uuid4().hex[:6]}"
    csv_file = tmp_path / "counts.csv"
    csv_file.write_text(
        f"sku,on_hand,location\n{good},5,\n,3,\n{other},-2,\n{other},two,\n{other},9,east\n"
    )

    result = storewire(state_dir, "stock", "import", str(csv_file))

    assert result.exit_code == 1
    assert "2 rows applied, 3 rejected" in result.stdout
    for line in ("line 3:", "line 4:", "line 5:"):
        assert line in result.stderr
    assert json.loads(storewire(state_dir, "stock", "show", good, "--json").stdout)["on_hand"] == 5
    assert json.loads(storewire(state_dir, "stock", "show", other, "--json").stdout)["on_hand"] == 9


def test_order_show_by_storefront_or_canonical_id(
    emulator: EmulatorHandle, state_dir: Path
) -> None:
    sku = f"SW-SHOW-{uuid.uuid4().hex[:6]}"
    storewire(state_dir, "stock", "set", sku, "--on-hand", "5")
    number = 900 + int(uuid.uuid4().int % 1000)
    assert post(emulator, order_body(number, sku)).status_code == 200
    emulator.wait_idle(timeout=60)
    external = str(6_000_000_000 + number)

    by_external = storewire(state_dir, "order", "show", external, "--json")

    assert by_external.exit_code == 0, by_external.output
    view = json.loads(by_external.stdout)
    assert view["payment"]["status"] == "pending"
    assert view["stock"]["status"] == "reserved"
    assert view["stock"]["lines"][0]["sku"] == sku
    assert "OrderPlaced" in [e["event_type"] for e in view["timeline"]]
    by_canonical = storewire(state_dir, "order", "show", view["order_id"], "--json")
    assert json.loads(by_canonical.stdout)["order_id"] == view["order_id"]
    assert storewire(state_dir, "order", "show", "no-such-order").exit_code == 1
