"""`make demo` is part of the product: its story must keep coming true."""

from __future__ import annotations

import io

from rich.console import Console
from storewire_local.demo import run


def test_the_demo_story_comes_true_and_shows_every_step() -> None:
    # Given a console that captures what a person would read
    out = io.StringIO()

    # When the demo runs the whole graph on the emulator
    failed = run(Console(file=out, width=160))

    # Then none of its checks failed, and each part of the story was shown
    shown = out.getvalue()
    assert failed == 0, shown
    for heading in ("Webhooks posted", "Events on the bus", "Order records", "Stock"):
        assert heading in shown
    assert "PaymentConfirmed" in shown
    assert "SignatureInvalid" in shown
