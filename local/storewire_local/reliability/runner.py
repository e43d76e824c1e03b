"""Drive a seeded history through the emulator with faults, then let the oracle judge it.

`run(RunConfig(...))` starts the emulator on the real template.yaml with its fakes, prepares
the history (stock, listings, the fakes' orders and payment intents), then sends every
delivery the way the storefront and the gateways would, from a pool of sender threads, with
the faults of the `FaultPlan` applied:

- duplicates: a share of deliveries is sent twice with the same delivery id, the copy either
  at once (concurrently) or a little later;
- reordering: deliveries are shuffled within a sliding window, so a payment or a cancellation
  may arrive before its order;
- late deliveries: a share is held back to the end of its phase;
- SQS redeliveries and killed workers (the emulator's `Chaos`);
- third-party faults: 5xx, 429 with Retry-After, slow answers past the client's timeout and
  dropped connections after the effect, through the fakes' fault controls;
- bus publish failures: PutEvents refused long enough that ingestion answers 503.

A delivery that is not acknowledged (5xx, 409 in flight) is sent again later, as Shopify,
Stripe and EasyPost do. Phases follow the history (checkout, then what follows fulfilment,
then tracking); each phase drains before the next. Every few seconds a snapshot checks that
no stock row is oversold. When the last phase has drained the faults are cleared and the
dead-letter queues are read (each message's reason is kept) and redriven, as an operator
would, until they stay empty. Then the oracle compares the end state with the history.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import oracle
from .traffic import Delivery, History, Secrets, generate

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
# A delivery the sender could not get acknowledged after this long is a failed run.
DELIVERY_DEADLINE_SECONDS = 240.0


@dataclass(frozen=True)
class FaultPlan:
    duplicate_rate: float = 0.30
    reorder_window: int = 8
    late_rate: float = 0.03
    redeliver_rate: float = 0.03
    kill_rate: float = 0.004
    # one third-party fault per this many deliveries sent (0: none)
    third_party_every: int = 25
    # one bus outage at ingestion per this many deliveries sent (0: none)
    bus_failure_every: int = 150
    # boto retries a 500 four times: the outage must outlast them to reach the handler
    bus_failure_length: int = 6

    @classmethod
    def none(cls) -> FaultPlan:
        return cls(0.0, 1, 0.0, 0.0, 0.0, 0, 0)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 1
    orders: int = 200
    senders: int = 16
    faults: FaultPlan = field(default_factory=FaultPlan)
    snapshot_seconds: float = 2.0
    drain_timeout: float = 900.0  # seconds without a finished invocation (see `_drain`)
    max_workers: int = 2


@dataclass
class Send:
    delivery: Delivery
    copy: int  # 0 the original, 1 a duplicate


@dataclass
class RunReport:
    config: RunConfig
    orders: int = 0
    deliveries_planned: int = 0
    webhooks_sent: int = 0
    duplicates_sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    sender_retries: int = 0
    refused: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    consumer_retries: int = 0
    dead_lettered: list[dict[str, Any]] = field(default_factory=list)
    redrive_rounds: int = 0
    oversell: list[str] = field(default_factory=list)
    snapshots: int = 0
    mismatches: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Deliveries never acknowledged, plus every effect the oracle found missing or not as
        a lossless run leaves it (one mismatch each; 0 is the only passing figure)."""
        return len(self.refused) + len(self.mismatches)

    @property
    def double_effects(self) -> int:
        return int(self.summary.get("double_effects", 0))

    @property
    def unexplained_dead_letters(self) -> list[dict[str, Any]]:
        return [m for m in self.dead_lettered if not m.get("explained")]

    @property
    def passed(self) -> bool:
        return (
            not self.refused
            and not self.mismatches
            and not self.oversell
            and self.double_effects == 0
            and not self.unexplained_dead_letters
        )

    def rows(self) -> list[tuple[str, str]]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return [
            ("seed", str(self.config.seed)),
            ("orders", str(self.orders)),
            ("webhooks delivered", str(self.webhooks_sent)),
            ("duplicates", str(self.duplicates_sent)),
            ("faults injected", faults),
            ("retries (senders / consumers)", f"{self.sender_retries} / {self.consumer_retries}"),
            ("dead-lettered (then redriven)", str(len(self.dead_lettered))),
            ("lost", str(self.lost)),
            ("double effects", str(self.double_effects)),
            ("oversell", f"{len(self.oversell)} ({self.snapshots} snapshots)"),
            ("oracle mismatches", str(len(self.mismatches))),
            ("wall time", f"{self.seconds:.0f} s"),
            ("orders/s", f"{self.orders / self.seconds:.2f}" if self.seconds else "-"),
        ]

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'':{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {k:{width}} | {v} |" for k, v in rows]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.config.seed,
            "orders": self.orders,
            "webhooks_delivered": self.webhooks_sent,
            "duplicates": self.duplicates_sent,
            "answers": dict(self.answers),
            "faults": dict(self.faults),
            "sender_retries": self.sender_retries,
            "consumer_retries": self.consumer_retries,
            "dead_lettered": self.dead_lettered,
            "redrive_rounds": self.redrive_rounds,
            "lost": self.lost,
            "double_effects": self.double_effects,
            "oversell": self.oversell,
            "snapshots": self.snapshots,
            "mismatches": self.mismatches[:200],
            "summary": self.summary,
            "seconds": self.seconds,
            "phase_seconds": self.phase_seconds,
            "orders_per_second": self.orders / self.seconds if self.seconds else 0.0,
            "passed": self.passed,
        }


def schedule(
    deliveries: list[Delivery],
    faults: FaultPlan,
    rng: random.Random,
    counts: Counter[str] | None = None,
) -> list[Send]:
    """The order the senders take deliveries in: duplicated, reordered, some held back.

    `counts` receives how many were held back (``late``), moved (``reordered``) and doubled
    (``duplicate``)."""
    on_time: list[Send] = []
    late: list[Send] = []
    for delivery in deliveries:
        (late if rng.random() < faults.late_rate else on_time).append(Send(delivery, 0))
    window = max(1, faults.reorder_window)
    reordered: list[Send] = []
    for start in range(0, len(on_time), window):
        chunk = on_time[start : start + window]
        rng.shuffle(chunk)
        reordered.extend(chunk)
    sends = reordered + late
    out: list[Send] = []
    pending: list[tuple[int, Send]] = []  # (due index, copy)
    for send in sends:
        out.append(send)
        if rng.random() < faults.duplicate_rate:
            pending.append((len(out) + rng.randint(0, 40), Send(send.delivery, 1)))
        due = [p for p in pending if p[0] <= len(out)]
        pending = [p for p in pending if p[0] > len(out)]
        out.extend(copy for _, copy in due)
    out.extend(copy for _, copy in pending)
    if counts is not None:
        counts["late"] += len(late)
        counts["reordered"] += sum(1 for i, send in enumerate(reordered) if send is not on_time[i])
        counts["duplicate"] += sum(1 for send in out if send.copy)
    return out


class _Sender:
    """Posts deliveries until each is acknowledged, as the vendors' retrying senders do."""

    def __init__(self, api_url: str, secrets: Secrets, report: RunReport, threads: int) -> None:
        self.api_url = api_url
        self.secrets = secrets
        self.report = report
        self.threads = threads
        self._lock = threading.Lock()
        self._local = threading.local()
        self.sent = 0
        self.on_sent: list[Any] = []

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.api_url, timeout=60.0)
            self._local.client = client
        return client

    def send_all(self, sends: list[Send]) -> None:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="sender") as pool:
            list(pool.map(self._send, sends))

    def _send(self, send: Send) -> None:
        delivery = send.delivery
        deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
        backoff = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._client().post(
                    delivery.path,
                    content=delivery.body,
                    headers=delivery.headers(self.secrets, time.time()),
                )
                status = str(answer.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
                answer = None
            with self._lock:
                self.report.answers[status] += 1
                self.report.webhooks_sent += 1
                if attempt > 1:
                    self.report.sender_retries += 1
                elif send.copy:
                    self.report.duplicates_sent += 1
                self.sent += 1
                hooks = list(self.on_sent)
            for hook in hooks:
                hook()
            if answer is not None and answer.status_code == 200:
                return
            if answer is not None and 400 <= answer.status_code < 500 and answer.status_code != 409:
                with self._lock:
                    self.report.refused.append(
                        f"{delivery.source} {delivery.topic} {delivery.delivery_id}: "
                        f"{answer.status_code} {answer.text[:200]}"
                    )
                return
            if time.monotonic() > deadline:
                with self._lock:
                    self.report.refused.append(
                        f"{delivery.source} {delivery.topic} {delivery.delivery_id}: "
                        f"never acknowledged (last {status})"
                    )
                return
            time.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)


class _ThirdPartyFaults:
    """Injects one vendor fault every `every` deliveries: kinds in turn, fakes at random."""

    KINDS: tuple[tuple[str, dict[str, Any]], ...] = (
        ("third_party_5xx", {"mode": "status", "status": 503, "count": 2}),
        ("third_party_429", {"mode": "429", "retry_after": 1, "count": 1}),
        ("third_party_dropped", {"mode": "drop", "count": 1}),
        ("third_party_timeout", {"mode": "slow", "seconds": 11.0, "count": 1}),
        ("third_party_5xx", {"mode": "status", "status": 500, "count": 1}),
    )

    def __init__(self, fakes: dict[str, str], report: RunReport, seed: int, every: int) -> None:
        self.fakes = sorted(fakes.items())
        self.report = report
        self.every = every
        self.rng = random.Random(seed * 7919 + 1)
        self._count = 0
        self._lock = threading.Lock()
        self.http = httpx.Client(timeout=10.0)

    def tick(self) -> None:
        if not self.every or not self.fakes:
            return
        with self._lock:
            self._count += 1
            if self._count % self.every:
                return
            _name, url = self.rng.choice(self.fakes)
            kind, spec = self.KINDS[(self._count // self.every - 1) % len(self.KINDS)]
        self.http.post(f"{url}/_fake/faults", json=spec).raise_for_status()
        with self._lock:
            self.report.faults[kind] += 1

    def clear(self) -> None:
        for _, url in self.fakes:
            self.http.delete(f"{url}/_fake/faults")
        self.http.close()


class _BusOutages:
    def __init__(self, handle: Any, report: RunReport, every: int, length: int) -> None:
        self.handle = handle
        self.report = report
        self.every = every
        self.length = length
        self._count = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        if not self.every:
            return
        with self._lock:
            self._count += 1
            if self._count % self.every:
                return
            self.report.faults["bus_publish_failure"] += 1
        self.handle.fault("events", "PutEvents", status=500, count=self.length)


@contextmanager
def _snapshots(handle: Any, report: RunReport, every: float, skus: list[str]) -> Iterator[None]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                found = oracle.oversold(handle, skus)
            except Exception as exc:
                found = [f"snapshot failed: {exc!r}"]
            report.snapshots += 1
            report.oversell.extend(found)

    thread = threading.Thread(target=loop, name="oversell-snapshots", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


STALL_CHECK_SECONDS = 30.0
"""How often a long drain looks at whether the graph is still making progress."""


def _drain(handle: Any, stall_timeout: float) -> None:
    """Wait until the graph is idle, twice, a second apart (retried messages come back after
    their visibility timeout).

    Fails only when nothing moved for `stall_timeout` seconds (no invocation finished): a
    large run can leave a backlog that takes longer than any fixed limit to work off, and
    a graph that still invokes its functions is not stuck.
    """
    quiet = 0
    progress = _progress(handle)
    last_move = time.monotonic()
    while quiet < 2:
        try:
            handle.wait_idle(timeout=min(STALL_CHECK_SECONDS, stall_timeout))
        except TimeoutError:
            now = _progress(handle)
            if now != progress:
                progress, last_move = now, time.monotonic()
            elif time.monotonic() - last_move >= stall_timeout:
                raise TimeoutError(
                    f"the graph made no progress for {stall_timeout:.0f} s"
                ) from None
            continue
        if _queues_empty(handle):
            quiet += 1
            time.sleep(1.0)
        else:
            quiet = 0
            time.sleep(0.5)


def _progress(handle: Any) -> int:
    """Invocations finished so far, over every function."""
    return sum(runner.invocations for runner in handle.emu.runners.values())


def _stack_queues(handle: Any) -> Any:
    from storewire_local import ops

    return ops.load_queues(handle.client("sqs"), dict(handle.emu.physical_resources()))


def _queues_empty(handle: Any) -> bool:
    from storewire_local import ops

    sqs = handle.client("sqs")
    queues = _stack_queues(handle)
    dlqs = set(queues.dlqs())
    for logical_id, url in queues.urls.items():
        if logical_id in dlqs:
            continue
        depth = ops.queue_depth(sqs, url)
        if depth["visible"] or depth["in_flight"]:
            return False
    return True


# What each injected vendor fault looks like in a logged reason or error. A dropped connection
# reaches the adapters as httpx's RemoteProtocolError ("Server disconnected without sending a
# response"), which the reason names by class only.
VENDOR_FAULT_SIGNS: dict[str, tuple[str, ...]] = {
    "third_party_5xx": ("500", "503", "5xx"),
    "third_party_429": ("429",),
    "third_party_timeout": ("timeout", "timed out"),
    "third_party_dropped": ("remoteprotocolerror", "disconnect", "connect"),
}
# Faults that deliver an event before what it depends on (it is retried until that is there).
ORDERING_FAULTS = ("reordered", "late", "duplicate")
# Retryable errors of an event that came before its prerequisite.
TOO_EARLY = ("PrerequisiteMissing", "OrderNotFound", "CrmOrderUnknown")
# A lease another attempt holds: that attempt died (killed) or waits on a slow vendor.
LEASE_HELD = ("LabelInProgress",)
# Vendor faults after which nobody knows whether the request took effect.
TRANSIT_FAULTS = ("third_party_timeout", "third_party_dropped")
LEASE_FAULTS = ("worker_killed", *TRANSIT_FAULTS)
# A CRM push whose attempt got no answer (a timeout, a dropped connection) may still land
# later, so it is pushed again rather than confirmed (storewire.crm, "in doubt").
IN_DOUBT = ("CrmPushInDoubt",)
# Tracking for a shipment whose label is not recorded yet: it came early (ordering), or the
# label's purchase waits on a lease a killed or slow attempt held.
BEFORE_LABEL = ("TrackingBeforeLabel",)


def explain(letter: dict[str, Any], faults: Counter[str]) -> bool:
    """Is this dead letter (ops.describe_message, plus its logged reason) explained by a
    fault we injected that outlasted the retries?

    A consumer's permanent failure must name a vendor fault we injected. A message the redrive
    policy moved carries no reason of its own; the consumer logged why each receive failed
    (`storewire.batch`), keyed by message id: an event that came before its prerequisite needs
    an ordering fault (reordering, lateness, duplicates), a vendor error an injected one; with
    no logged reason the worker died mid-batch, which needs an injected kill.
    """
    if letter.get("origin") == "consumer":
        return _names_injected_vendor_fault(str(letter.get("error") or ""), faults)
    if letter.get("origin") == "redrive":
        logged = str(letter.get("logged_error_type") or "")
        if not logged:
            return bool(faults.get("worker_killed"))
        if logged in TOO_EARLY:
            return any(faults.get(kind) for kind in ORDERING_FAULTS)
        if logged in LEASE_HELD:
            return any(faults.get(kind) for kind in LEASE_FAULTS)
        if logged in IN_DOUBT:
            return any(faults.get(kind) for kind in TRANSIT_FAULTS)
        if logged in BEFORE_LABEL:
            return any(faults.get(kind) for kind in (*ORDERING_FAULTS, *LEASE_FAULTS))
        reason = str(letter.get("logged_reason") or "")
        if _names_injected_vendor_fault(reason, faults):
            return True
        return bool(faults.get("bus_publish_failure")) and "putevents" in reason.lower().replace(
            " ", ""
        )
    return False


def _names_injected_vendor_fault(text: str, faults: Counter[str]) -> bool:
    lowered = text.lower()
    return any(
        faults.get(kind) and any(sign in lowered for sign in signs)
        for kind, signs in VENDOR_FAULT_SIGNS.items()
    )


def _logged_retries(log_dir: Path) -> dict[str, dict[str, Any]]:
    """The last logged retry reason per SQS message id, from every function's log."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(log_dir.glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"retried"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("outcome") == "retried" and entry.get("message_id"):
                    found[str(entry["message_id"])] = entry
    return found


def _redrive_dead_letters(handle: Any, report: RunReport, rounds: int = 3) -> None:
    from storewire_local import ops

    sqs = handle.client("sqs")
    queues = _stack_queues(handle)
    for _ in range(rounds):
        listing = [q for q in ops.list_dlqs(sqs, queues) if q["messages"]]
        if not listing:
            return
        report.redrive_rounds += 1
        logged = _logged_retries(handle.emu.state_dir / "logs")
        for queue in listing:
            for letter in queue["messages"]:
                why = logged.get(str(letter.get("message_id")), {})
                letter = {
                    **letter,
                    "queue": queue["queue"],
                    "logged_error_type": why.get("error_type"),
                    "logged_reason": why.get("reason"),
                }
                letter["explained"] = explain(letter, report.faults)
                report.dead_lettered.append(letter)
            ops.redrive(sqs, queues.urls[queue["queue"]], queues.urls[queue["source"]])
        _drain(handle, report.config.drain_timeout)


def run(config: RunConfig, out: Path | None = None, log: Any = print) -> RunReport:
    from storewire_local.emulator import Emulator
    from storewire_local.testing import EmulatorHandle

    report = RunReport(config=config, orders=config.orders)
    secrets = Secrets()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHOPIFY_WEBHOOK_SECRET"] = secrets.shopify
    started = time.monotonic()
    history: History = generate(config.seed, config.orders)
    log(f"history: {config.orders} orders, seed {config.seed}")
    with tempfile.TemporaryDirectory(prefix="storewire-reliability-") as state:
        emu = Emulator(
            TEMPLATE,
            port=0,
            state_dir=Path(state),
            env=env,
            fire_schedules=False,
            max_workers=config.max_workers,
            fakes_process=True,
        )
        emu.start()
        handle = EmulatorHandle(emu)
        try:
            _run_graph(config, report, history, handle, secrets, log)
        finally:
            handle.http.close()
            emu.stop()
    report.seconds = time.monotonic() - started
    if out is not None:
        out.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    return report


def _run_graph(
    config: RunConfig,
    report: RunReport,
    history: History,
    handle: Any,
    secrets: Secrets,
    log: Any,
) -> None:
    emu = handle.emu
    faults = config.faults
    rng = random.Random(config.seed)
    with httpx.Client(timeout=60.0) as http:
        emu.warm()
        history.prepare(http, handle)
        deliveries = history.deliveries
        report.deliveries_planned = len(deliveries)
        fakes: dict[str, str] = emu.info()["fakes"]
        sender = _Sender(emu.api_url, secrets, report, config.senders)
        vendors = _ThirdPartyFaults(fakes, report, config.seed, faults.third_party_every)
        outages = _BusOutages(handle, report, faults.bus_failure_every, faults.bus_failure_length)
        sender.on_sent = [vendors.tick, outages.tick]
        emu.chaos.configure(
            redeliver_rate=faults.redeliver_rate, kill_rate=faults.kill_rate, seed=config.seed
        )
        phases = sorted({d.phase for d in deliveries})
        skus = sorted({sku for sku, _location in history.stock})
        with _snapshots(handle, report, config.snapshot_seconds, skus):
            for phase in phases:
                began = time.monotonic()
                batch = [d for d in deliveries if d.phase == phase]
                sender.send_all(schedule(batch, faults, rng, report.faults))
                _drain(handle, config.drain_timeout)
                report.phase_seconds[f"phase {phase}"] = time.monotonic() - began
                log(f"phase {phase}: {len(batch)} deliveries in {time.monotonic() - began:.0f} s")
            began = time.monotonic()
            tracking = history.tracking_deliveries(http, fakes["easypost"])
            sender.send_all(schedule(tracking, faults, rng, report.faults))
            _drain(handle, config.drain_timeout)
            report.phase_seconds["tracking"] = time.monotonic() - began
            log(f"tracking: {len(tracking)} deliveries in {time.monotonic() - began:.0f} s")
            # the faults stop; what outlasted the retries is in the DLQs, with its reason
            emu.chaos.off()
            vendors.clear()
            handle.clear_faults()
            _drain(handle, config.drain_timeout)
            report.faults.update(emu.chaos.counts)
            _redrive_dead_letters(handle, report)
        report.consumer_retries = sum(
            int(m.get("failed", 0)) for m in _invocation_failures(handle).values()
        )
        observed = oracle.observe(handle, http)
        report.mismatches = oracle.compare(history, observed)
        report.summary = oracle.summary(observed)
        report.oversell.extend(oracle.oversold(handle))


def _invocation_failures(handle: Any) -> dict[str, dict[str, int]]:
    """Per function, how many invocations failed (and were retried by SQS or the sender)."""
    out: dict[str, dict[str, int]] = {}
    for logical_id, runner in handle.emu.runners.items():
        out[logical_id] = {"invocations": runner.invocations, "failed": runner.failures}
    return out
