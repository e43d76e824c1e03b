"""A worker killed at any moment fails its invocation like Lambda (Runtime.ExitError), never
with an emulator exception: the chaos killer fires on a timer, from another thread."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from storewire_local.emulator.runner import FunctionRunner, Worker, worker_environment
from storewire_local.emulator.stack import FunctionSpec

SLEEPY = Path(__file__).resolve().parents[1] / "e2e" / "fixtures" / "functions" / "sleepy"


def spec(timeout: float = 5.0) -> FunctionSpec:
    return FunctionSpec(
        logical_id="SleepyFunction",
        name="sleepy",
        code_dir=SLEEPY,
        handler="app.lambda_handler",
        runtime="python3.13",
        timeout=timeout,
        memory_size=128,
        environment={},
        layer_dirs=[],
    )


def environment(function: FunctionSpec) -> dict[str, str]:
    env = worker_environment(function, "http://127.0.0.1:9", os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    errors: list[str] = []

    def hook(args: Any) -> None:
        errors.append(f"{args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    return errors


def started(function: FunctionSpec, lines: list[str]) -> Worker:
    worker = Worker(function, environment(function), lines.append)
    worker.wait_ready(timeout=30)
    return worker


def test_a_worker_killed_before_the_request_is_written_reports_an_exit(
    thread_errors: list[str],
) -> None:
    worker = started(spec(), [])
    worker.kill()

    answer = worker.invoke({"seconds": 0}, "r-1")

    assert answer["died"] is True
    assert answer["error"]["errorType"] == "Runtime.ExitError"
    assert not worker.alive
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(timeout=2)
    assert thread_errors == []


def test_a_worker_killed_mid_invocation_reports_an_exit_and_its_readers_end_quietly(
    thread_errors: list[str],
) -> None:
    worker = started(spec(), [])
    killer = threading.Timer(0.3, worker.kill)
    killer.start()

    answer = worker.invoke({"seconds": 3}, "r-1")

    killer.join()
    assert answer["died"] is True
    assert "mid-invocation" in answer["error"]["errorMessage"]
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(timeout=2)
    assert thread_errors == []


def test_a_pool_invocation_whose_worker_is_killed_at_once_fails_as_a_lambda_error(
    tmp_path: Path, thread_errors: list[str]
) -> None:
    class KillAtOnce:
        def kill_after(self) -> float:
            return 0.0

    function = spec()
    runner = FunctionRunner(function, environment(function), tmp_path, chaos=KillAtOnce())  # type: ignore[arg-type]
    try:
        outcomes = []
        for _ in range(5):
            try:
                runner.invoke({"seconds": 0.2})
                outcomes.append("ok")
            except Exception as error:
                outcomes.append(type(error).__name__)
    finally:
        runner.close()
    for thread in threading.enumerate():  # restarts racing the close
        if thread is not threading.current_thread() and thread.daemon:
            thread.join(timeout=10)

    assert set(outcomes) == {"InvocationError"}
    assert runner.restarts >= 1
    assert thread_errors == []


def test_a_workers_boto3_reads_no_shared_file_and_takes_the_emulators_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /dev/null is not a safe "empty file": on some machines it is a regular file holding
    # whatever was last written to it, and botocore then cannot parse it as config.
    env = worker_environment(spec(), "http://127.0.0.1:9", os.environ)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert env[name] != os.devnull
        assert not Path(env[name]).exists(), env[name]
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)

    session = botocore.session.Session()

    assert session.full_config == {"profiles": {}}
    credentials = session.get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.method) == ("testing", "env")
    assert session.get_config_variable("region") == env["AWS_REGION"]
