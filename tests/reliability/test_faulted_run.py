"""A seeded history driven through the emulator with every fault kind, judged by the oracle.

This is `make reliability`'s run at the size `make test` affords (STOREWIRE_RELIABILITY=full
runs more orders); the 10,000-order load run is `python -m storewire_local.reliability`.
Fault rates are denser than the default plan so that a small run meets every kind.
"""

from __future__ import annotations

import os
from pathlib import Path

from storewire_local.reliability.runner import FaultPlan, RunConfig, run

FULL = os.environ.get("STOREWIRE_RELIABILITY", "small") == "full"
ORDERS = 150 if FULL else 24
SEED = int(os.environ.get("STOREWIRE_RELIABILITY_SEED", "1"))
DENSE = FaultPlan(
    duplicate_rate=0.30,
    reorder_window=8,
    late_rate=0.05,
    redeliver_rate=0.05,
    kill_rate=0.03,
    third_party_every=6,
    bus_failure_every=25,
)
EVERY_KIND = (
    "sqs_redelivery",
    "worker_killed",
    "bus_publish_failure",
    "third_party_5xx",
    "third_party_429",
    "third_party_dropped",
    "third_party_timeout",
)


def test_a_faulted_run_loses_nothing_doubles_nothing_and_never_oversells(tmp_path: Path) -> None:
    report = run(
        RunConfig(seed=SEED, orders=ORDERS, senders=12, faults=DENSE),
        out=tmp_path / "report.json",
        log=lambda _line: None,
    )
    print(report.table())
    assert report.refused == [], "deliveries never acknowledged or refused"
    assert report.mismatches == [], "\n".join(report.mismatches[:30])
    assert report.oversell == [], report.oversell[:10]
    assert report.double_effects == 0, report.summary
    assert report.unexplained_dead_letters == [], report.unexplained_dead_letters
    missing = [kind for kind in EVERY_KIND if not report.faults.get(kind)]
    assert missing == [], f"fault kinds never injected: {missing} ({dict(report.faults)})"
    assert report.duplicates_sent > 0
    assert report.snapshots > 0
    assert report.passed
