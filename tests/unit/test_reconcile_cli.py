"""`storewire reconcile`: the invoke payload and the printed summary (no emulator needed)."""

from __future__ import annotations

import pytest
import typer
from storewire_local.reconcile_cli import request, summary
from typer.testing import CliRunner


def test_the_payload_names_the_kind_and_a_normalised_since() -> None:
    assert request("orders", "2026-11-01T00:00:00Z", None) == {
        "kind": "orders",
        "since": "2026-11-01T00:00:00+00:00",
    }
    assert request("stock", None, "x.myshopify.com") == {"kind": "stock", "shop": "x.myshopify.com"}


@pytest.mark.parametrize(("kind", "since"), [("everything", None), ("orders", "yesterday")])
def test_a_bad_kind_or_since_is_refused(kind: str, since: str | None) -> None:
    with pytest.raises(typer.Exit):
        request(kind, since, None)


def test_the_summary_says_what_was_corrected() -> None:
    line = summary(
        {
            "kind": "orders",
            "checked": 20,
            "corrected": 3,
            "missing": 1,
            "behind": 2,
            "republished": 5,
            "pages": 1,
            "watermark": "2026-11-20T12:00:00Z",
            "complete": False,
        }
    )
    assert "missing 1, behind 2" in line
    assert "stopped early" in line


def test_without_an_emulator_the_command_says_so(tmp_path: object) -> None:
    from storewire_local.cli import app

    result = CliRunner().invoke(app, ["reconcile", "orders", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
