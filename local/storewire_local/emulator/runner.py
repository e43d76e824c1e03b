"""Warm worker processes, one pool per function; one invocation at a time per worker."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .cfn import REGION
from .chaos import Chaos
from .stack import FunctionSpec

log = logging.getLogger("storewire.emulator")

_EOF = object()

# Where a worker's boto3 looks for shared config and credentials: a path that does not exist,
# which botocore reads as empty. Not os.devnull: on some machines /dev/null is a regular file
# that holds whatever was last written to it, and botocore then fails to parse it (seen in CI:
# every handler's first AWS client raised ConfigParseError).
NO_AWS_CONFIG_FILE = str(Path(__file__).with_name("no-such-aws-config"))


class InvocationError(Exception):
    """The handler raised, timed out, or its worker died. ``error`` is Lambda-shaped."""

    def __init__(self, function: str, error: dict[str, Any]) -> None:
        self.function = function
        self.error = error
        super().__init__(f"{function}: {error.get('errorType')}: {error.get('errorMessage')}")


class Worker:
    """One subprocess running ``storewire_local.emulator.worker``."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        log_sink: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self._responses: queue.Queue[Any] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "storewire_local.emulator.worker"],
            cwd=spec.code_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._log_sink = log_sink
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        threading.Thread(target=self._read_protocol, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._pump_logs, args=(self.proc.stderr,), daemon=True).start()
        self.ready = False

    def _read_protocol(self, stream: IO[bytes]) -> None:
        try:
            for line in _lines(stream):
                try:
                    self._responses.put(json.loads(line))
                except ValueError:
                    self._log_sink(f"[protocol] unparseable line: {line[:200]!r}")
        finally:
            self._responses.put(_EOF)

    def _pump_logs(self, stream: IO[bytes]) -> None:
        for line in _lines(stream):
            self._log_sink(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        message = self._next(timeout)
        if message is _EOF:
            raise InvocationError(
                self.spec.logical_id,
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"worker exited during init (code {self.proc.poll()})",
                },
            )
        if not message.get("ready"):
            self.kill()
            error = message.get("error") or {}
            error = {**error, "errorType": f"Runtime.ImportModuleError: {error.get('errorType')}"}
            raise InvocationError(self.spec.logical_id, error)
        self.ready = True

    def _next(self, timeout: float) -> Any:
        try:
            return self._responses.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise InvocationError(
                self.spec.logical_id,
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {timeout:.2f} seconds",
                },
            ) from None

    def invoke(self, event: Any, request_id: str) -> dict[str, Any]:
        timeout = self.spec.timeout
        deadline_ms = int((time.time() + timeout) * 1000)
        line = json.dumps({"id": request_id, "event": event, "deadline_ms": deadline_ms})
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # ValueError: killed (stdin closed) before the write
            self.kill()
            return _died(self, "worker pipe closed")
        message = self._next(timeout + 1.0)
        if message is _EOF:
            return _died(self, f"worker exited mid-invocation (code {self.proc.wait()})")
        return dict(message)

    def kill(self) -> None:
        """Stop the process now. Its stdout and stderr are closed by their reader threads
        when they reach the end the process's death gives them; closing them here, under a
        reader, made the reader fail (seen in a 10,000-order run with workers killed)."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """A worker pipe's lines until it ends, or goes with a killed worker; then it is closed."""
    try:
        yield from stream
    except (OSError, ValueError):  # ValueError: read after the pipe was closed
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def _died(worker: Worker, message: str) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"errorType": "Runtime.ExitError", "errorMessage": message},
        "died": True,
    }


class FunctionRunner:
    """A pool of up to ``max_workers`` warm workers for one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        log_dir: Path,
        max_workers: int = 1,
        echo: Callable[[str, str], None] | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        self.spec = spec
        self.chaos = chaos
        self.env = env
        self.max_workers = max(1, max_workers)
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._cond = threading.Condition()
        self._closed = False
        self.in_flight = 0
        self.invocations = 0
        self.failures = 0
        self.restarts = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{spec.logical_id}.log"
        self._log_file = self.log_path.open("a", encoding="utf-8", buffering=1)
        self._log_lock = threading.Lock()
        self._echo = echo

    def _sink(self, line: str) -> None:
        with self._log_lock:
            if not self._log_file.closed:
                self._log_file.write(line + "\n")
        if self._echo is not None:
            self._echo(self.spec.logical_id, line)

    def _spawn(self) -> Worker:
        worker = Worker(self.spec, self.env, self._sink)
        try:
            worker.wait_ready(timeout=60)
        except InvocationError:
            worker.kill()
            raise
        return worker

    def warm(self) -> None:
        """Start one worker now instead of at the first invocation."""
        worker = self._acquire()
        self._release(worker)

    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise InvocationError(
                        self.spec.logical_id,
                        {"errorType": "Emulator.Stopped", "errorMessage": "emulator stopped"},
                    )
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._all.remove(worker)
                if len(self._all) < self.max_workers:
                    placeholder = object()
                    self._all.append(placeholder)  # type: ignore[arg-type]
                    break
                self._cond.wait()
        try:
            worker = self._spawn()
        except BaseException:
            with self._cond:
                self._all.remove(placeholder)  # type: ignore[arg-type]
                self._cond.notify()
            raise
        with self._cond:
            if not self._closed and placeholder in self._all:
                self._all[self._all.index(placeholder)] = worker  # type: ignore[arg-type]
                return worker
        # closed while it started (a restart racing the emulator's stop): it serves no one
        worker.kill()
        raise InvocationError(
            self.spec.logical_id,
            {"errorType": "Emulator.Stopped", "errorMessage": "emulator stopped"},
        )

    def _release(self, worker: Worker) -> None:
        with self._cond:
            if self._closed or not worker.alive:
                if worker in self._all:
                    self._all.remove(worker)
                if not self._closed:
                    worker.kill()
            else:
                self._idle.append(worker)
            self._cond.notify()

    def invoke(self, event: Any) -> Any:
        """Run the handler once; return its result or raise InvocationError."""
        request_id = str(uuid.uuid4())
        with self._cond:
            self.in_flight += 1
        try:
            worker = self._acquire()
            kill_after = self.chaos.kill_after() if self.chaos is not None else None
            killer = None
            if kill_after is not None:
                killer = threading.Timer(kill_after, worker.kill)
                killer.daemon = True
                killer.start()
            try:
                answer = worker.invoke(event, request_id)
            finally:
                if killer is not None:
                    killer.cancel()
                self._release(worker)
            self.invocations += 1
            if answer.get("died") or not worker.alive:
                self.restarts += 1
                self._sink(f"[emulator] worker for {self.spec.logical_id} died; restarting")
                threading.Thread(target=self._respawn_quietly, daemon=True).start()
            if not answer.get("ok"):
                self.failures += 1
                raise InvocationError(self.spec.logical_id, answer.get("error") or {})
            return answer.get("result")
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def _respawn_quietly(self) -> None:
        try:
            self.warm()
        except InvocationError as exc:
            log.warning("could not restart worker: %s", exc)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = [w for w in self._all if isinstance(w, Worker)]
            idle = set(map(id, self._idle))
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            if id(worker) in idle:
                worker.stop()
            else:
                worker.kill()  # busy: its invocation fails now
        with self._log_lock:
            self._log_file.close()


def worker_environment(
    spec: FunctionSpec,
    aws_endpoint_url: str,
    base_env: Mapping[str, str],
) -> dict[str, str]:
    """The environment a function's worker runs with."""
    env = {
        k: v
        for k, v in base_env.items()
        if not k.startswith(("AWS_", "_HANDLER", "LAMBDA_", "POWERTOOLS_", "STOREWIRE_WORKER"))
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": NO_AWS_CONFIG_FILE,
            "AWS_SHARED_CREDENTIALS_FILE": NO_AWS_CONFIG_FILE,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_SAM_LOCAL": "true",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(spec.environment)
    env["STOREWIRE_WORKER_PATH"] = os.pathsep.join(
        [str(spec.code_dir), *(str(d) for d in spec.layer_dirs)]
        + [str(d / "python") for d in spec.layer_dirs if (d / "python").is_dir()]
    )
    return env
