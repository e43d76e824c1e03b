"""Faults the Lambda and SQS services themselves cause, injected on purpose.

Off by default. The reliability suite turns them on (``Emulator.chaos.configure``):

- ``redeliver_rate``: a message whose invocation succeeded is not deleted, as when the
  DeleteMessage call is lost; SQS hands it out again once its visibility timeout ends.
- ``kill_rate``: the worker running an invocation is killed a few milliseconds into it, as
  when a Lambda sandbox dies mid-batch; the invocation fails (the batch is retried by SQS, the
  HTTP caller gets a 502) and the emulator starts a fresh worker.

Decisions come from one seeded generator, so a run's fault pattern depends only on the seed
and the order in which invocations happen.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Chaos:
    redeliver_rate: float = 0.0
    kill_rate: float = 0.0
    kill_within_seconds: float = 0.05
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def configure(
        self, *, redeliver_rate: float = 0.0, kill_rate: float = 0.0, seed: int = 0
    ) -> None:
        for name, rate in (("redeliver_rate", redeliver_rate), ("kill_rate", kill_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        with self._lock:
            self.redeliver_rate = redeliver_rate
            self.kill_rate = kill_rate
            self.seed = seed
            self._rng = random.Random(seed)

    def off(self) -> None:
        self.configure(seed=self.seed)

    def redeliver(self) -> bool:
        return self._draw("sqs_redelivery", self.redeliver_rate)

    def kill_after(self) -> float | None:
        """Seconds after which to kill this invocation's worker, or None to let it run."""
        if not self._draw("worker_killed", self.kill_rate):
            return None
        with self._lock:
            return self._rng.uniform(0.0, self.kill_within_seconds)

    def _draw(self, kind: str, rate: float) -> bool:
        if rate <= 0.0:
            return False
        with self._lock:
            hit = self._rng.random() < rate
            if hit:
                self.counts[kind] += 1
        return hit
