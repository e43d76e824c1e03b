"""The reliability runner's pure parts: the send schedule, dead-letter explanations, chaos."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from storewire_local.emulator.chaos import Chaos
from storewire_local.reliability import runner
from storewire_local.reliability.runner import FaultPlan, RunConfig, RunReport, explain, schedule
from storewire_local.reliability.traffic import Delivery


def _deliveries(n: int) -> list[Delivery]:
    return [Delivery("shopify", "orders/create", f"d{i}", b"{}", i) for i in range(n)]


def test_every_delivery_is_sent_and_a_share_twice() -> None:
    deliveries = _deliveries(2000)
    sends = schedule(deliveries, FaultPlan(duplicate_rate=0.3), random.Random(1))
    copies = Counter(s.delivery.delivery_id for s in sends)
    assert set(copies) == {d.delivery_id for d in deliveries}
    assert max(copies.values()) == 2
    duplicated = sum(1 for n in copies.values() if n == 2)
    assert 0.25 * 2000 < duplicated < 0.35 * 2000
    assert sum(1 for s in sends if s.copy) == duplicated
    originals = [s for s in sends if not s.copy]
    assert len(originals) == 2000


def test_a_duplicate_never_goes_before_its_original() -> None:
    sends = schedule(_deliveries(500), FaultPlan(duplicate_rate=0.5), random.Random(3))
    seen: set[str] = set()
    for send in sends:
        if send.copy:
            assert send.delivery.delivery_id in seen
        else:
            seen.add(send.delivery.delivery_id)


def test_reordering_stays_within_its_window_and_late_deliveries_go_last() -> None:
    plan = FaultPlan(duplicate_rate=0.0, reorder_window=8, late_rate=0.05)
    sends = schedule(_deliveries(1000), plan, random.Random(5))
    positions = [int(s.delivery.delivery_id[1:]) for s in sends]
    assert positions != sorted(positions), "nothing was reordered"
    tail = 1  # the late block: the longest ascending suffix
    while positions[-tail - 1] < positions[-tail]:
        tail += 1
    on_time, late = positions[:-tail], positions[-tail:]
    assert 0.02 * 1000 < len(late) < 0.1 * 1000
    rank = {p: i for i, p in enumerate(sorted(on_time))}
    assert all(abs(rank[p] - i) < 8 for i, p in enumerate(on_time))


def test_no_faults_means_the_storefront_order_exactly() -> None:
    deliveries = _deliveries(300)
    sends = schedule(deliveries, FaultPlan.none(), random.Random(9))
    assert [s.delivery for s in sends] == deliveries


def test_the_schedule_depends_only_on_the_seed() -> None:
    deliveries = _deliveries(400)
    first = schedule(deliveries, FaultPlan(), random.Random(11))
    again = schedule(deliveries, FaultPlan(), random.Random(11))
    other = schedule(deliveries, FaultPlan(), random.Random(12))
    assert [(s.delivery.delivery_id, s.copy) for s in first] == [
        (s.delivery.delivery_id, s.copy) for s in again
    ]
    assert [s.delivery.delivery_id for s in first] != [s.delivery.delivery_id for s in other]


def test_a_consumer_dead_letter_is_explained_only_by_a_vendor_fault_we_injected() -> None:
    letter = {"origin": "consumer", "error": "VendorUnavailable: HTTP 503 from EasyPost"}
    assert explain(letter, Counter({"third_party_5xx": 2}))
    assert not explain(letter, Counter({"worker_killed": 2}))
    assert not explain(
        {"origin": "consumer", "error": "ValidationError: bad sku"}, Counter({"third_party_5xx": 2})
    )


def test_a_redrive_policy_dead_letter_is_explained_by_its_logged_reason() -> None:
    early = {
        "origin": "redrive",
        "error": "retries exhausted",
        "logged_error_type": "PrerequisiteMissing",
        "logged_reason": "order not placed yet",
    }
    assert explain(early, Counter({"reordered": 3}))
    assert not explain(early, Counter({"worker_killed": 3})), "needs an ordering fault"
    vendor = {
        "origin": "redrive",
        "logged_error_type": "RetryableError",
        "logged_reason": "EasyPost answered 503",
    }
    assert explain(vendor, Counter({"third_party_5xx": 1}))
    assert not explain(vendor, Counter({"reordered": 1}))
    assert not explain(vendor, Counter({"third_party_timeout": 1})), "a 503 is not a timeout"
    # seen in the 10,000-order run at a49c0f8: HubSpot's dropped connections, five in a row
    dropped = {
        "origin": "redrive",
        "logged_error_type": "RetryableUpstreamError",
        "logged_reason": "hubspot POST /crm/v3/objects/contacts/batch/upsert: RemoteProtocolError",
    }
    assert explain(dropped, Counter({"third_party_dropped": 1}))
    assert not explain(dropped, Counter({"third_party_5xx": 1, "worker_killed": 1}))
    unknown = {**early, "logged_error_type": "OrderNotFound"}
    assert explain(unknown, Counter({"late": 1}))
    lease = {"origin": "redrive", "logged_error_type": "LabelInProgress", "logged_reason": "x"}
    assert explain(lease, Counter({"worker_killed": 1}))
    assert not explain(lease, Counter({"reordered": 1}))
    in_doubt = {
        "origin": "redrive",
        "logged_error_type": "CrmPushInDoubt",
        "logged_reason": "a contact push attempt failed in transit; push again",
    }
    assert explain(in_doubt, Counter({"third_party_timeout": 1}))
    assert explain(in_doubt, Counter({"third_party_dropped": 1}))
    assert not explain(in_doubt, Counter({"third_party_5xx": 4, "worker_killed": 2}))
    before_label = {"origin": "redrive", "logged_error_type": "TrackingBeforeLabel"}
    assert explain(before_label, Counter({"worker_killed": 1}))
    assert explain(before_label, Counter({"late": 1}))
    assert not explain(before_label, Counter({"third_party_5xx": 1}))
    silent = {"origin": "redrive", "error": "retries exhausted"}
    assert explain(silent, Counter({"worker_killed": 1})), "a killed worker logs nothing"
    assert not explain(silent, Counter({"reordered": 5}))


def test_the_schedule_counts_its_ordering_faults() -> None:
    counts: Counter[str] = Counter()
    sends = schedule(_deliveries(500), FaultPlan(), random.Random(2), counts)
    assert counts["duplicate"] == sum(1 for s in sends if s.copy) > 0
    assert counts["late"] > 0
    assert counts["reordered"] > 0


def test_the_report_fails_on_any_loss_double_effect_oversell_or_unexplained_letter() -> None:
    clean = RunReport(config=RunConfig(), orders=1)
    assert clean.passed
    for spoil in (
        lambda r: r.refused.append("shopify orders/create d1: 400"),
        lambda r: r.mismatches.append("order o1: missing label"),
        lambda r: r.oversell.append("SKU A at east: available -1"),
        lambda r: r.summary.update(double_effects=1),
        lambda r: r.dead_lettered.append({"explained": False}),
    ):
        report = RunReport(config=RunConfig(), orders=1)
        spoil(report)
        assert not report.passed
    report = RunReport(config=RunConfig(), orders=1)
    report.mismatches.append("order o1: missing label")
    assert report.lost == 1


def test_chaos_is_off_until_configured_and_counts_what_it_does() -> None:
    chaos = Chaos()
    assert not any(chaos.redeliver() for _ in range(100))
    assert all(chaos.kill_after() is None for _ in range(100))
    chaos.configure(redeliver_rate=0.5, kill_rate=1.0, seed=4)
    draws = [chaos.redeliver() for _ in range(1000)]
    assert 400 < sum(draws) < 600
    assert chaos.counts["sqs_redelivery"] == sum(draws)
    delay = chaos.kill_after()
    assert delay is not None
    assert 0.0 <= delay <= chaos.kill_within_seconds
    chaos.off()
    assert not chaos.redeliver()


def test_chaos_is_deterministic_for_a_seed() -> None:
    one, two = Chaos(), Chaos()
    one.configure(redeliver_rate=0.3, seed=8)
    two.configure(redeliver_rate=0.3, seed=8)
    assert [one.redeliver() for _ in range(200)] == [two.redeliver() for _ in range(200)]


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_chaos_refuses_rates_outside_zero_to_one(rate: float) -> None:
    with pytest.raises(ValueError, match="within"):
        Chaos().configure(redeliver_rate=rate)


class _Runner:
    def __init__(self) -> None:
        self.invocations = 0


class _Graph:
    """A handle whose graph stays busy for `busy` waits, invoking a function each time if
    `moving`; its queues are empty once it is idle."""

    def __init__(self, busy: int, *, moving: bool) -> None:
        self.busy = busy
        self.moving = moving
        self.runner = _Runner()
        self.emu = type("Emu", (), {"runners": {"Fn": self.runner}})()

    def wait_idle(self, timeout: float) -> None:
        if self.busy > 0:
            self.busy -= 1
            if self.moving:
                self.runner.invocations += 1
            time.sleep(min(timeout, 0.02))
            raise TimeoutError("not idle")


def test_a_drain_outlasts_its_stall_timeout_while_the_graph_makes_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "STALL_CHECK_SECONDS", 0.02)
    monkeypatch.setattr(runner, "_queues_empty", lambda handle: True)
    graph = _Graph(busy=20, moving=True)
    started = time.monotonic()

    runner._drain(graph, stall_timeout=0.1)

    assert time.monotonic() - started > 0.1  # longer than the timeout, and no error
    assert graph.busy == 0


def test_a_drain_of_a_graph_that_makes_no_progress_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "STALL_CHECK_SECONDS", 0.02)
    monkeypatch.setattr(runner, "_queues_empty", lambda handle: True)
    graph = _Graph(busy=1000, moving=False)

    with pytest.raises(TimeoutError, match="no progress"):
        runner._drain(graph, stall_timeout=0.1)
