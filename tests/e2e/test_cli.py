"""The `storewire` CLI as a user runs it: `local up`, `send shopify`, `events`, `local invoke`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import Result
from storewire_local.cli import app
from typer.testing import CliRunner

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "template.yaml"
PAYLOADS = REPO_ROOT / "events" / "payloads" / "shopify"


def storewire(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process (fast); `local up` itself runs as a real subprocess."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    finally:
        os.chdir(previous)


def _read_until_ready(stream: IO[str], lines: list[str], ready: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        if "ready" in line:
            ready.set()


@pytest.fixture(scope="module")
def local_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, subprocess.Popen[str], list[str]]]:
    """`storewire local up` on the real template, as a subprocess."""
    template = REPO_ROOT / "template.yaml"
    if not template.is_file():
        pytest.fail(f"{template} does not exist yet", pytrace=False)
    workdir = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "SHOPIFY_WEBHOOK_SECRET": "shpss_cli_secret"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from storewire_local.cli import app; app()",
            "local",
            "up",
            "--port",
            "0",
            "--template",
            str(template),
            "--no-echo-logs",
            "--no-schedules",
        ],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()
    assert proc.stdout is not None
    threading.Thread(
        target=_read_until_ready, args=(proc.stdout, lines, ready), daemon=True
    ).start()
    try:
        assert ready.wait(60), f"no ready line: {lines}"
        yield workdir, proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_local_up_prints_ready_and_writes_local_json(local_up: Any) -> None:
    workdir, proc, lines = local_up
    state = json.loads((workdir / ".storewire" / "local.json").read_text())
    ready_line = next(line for line in lines if "ready" in line)
    assert state["api_url"] in ready_line
    assert state["aws_endpoint_url"].startswith("http://127.0.0.1:")
    assert state["region"] == "us-east-1"
    assert state["pid"] == proc.pid
    assert set(state["fakes"]) == {"stripe", "shopify_admin", "easypost", "hubspot"}
    assert all(url.startswith("http://127.0.0.1:") for url in state["fakes"].values())
    assert state["resources"]["EventBus"] == "storewire-local"
    assert state["resources"]["CrmSyncQueue"].endswith("/storewire-local-CrmSyncQueue")


def test_send_shopify_then_events_by_order(local_up: Any) -> None:
    workdir, _proc, _lines = local_up
    env = {"SHOPIFY_WEBHOOK_SECRET": "shpss_cli_secret"}
    webhook_id = str(uuid.uuid4())
    sent = storewire(
        "send",
        "shopify",
        "orders/create",
        str(PAYLOADS / "orders_create.json"),
        "--times",
        "2",
        "--webhook-id",
        webhook_id,
        cwd=workdir,
        env=env,
    )
    assert sent.exit_code == 0, sent.output
    answers = sent.stdout.splitlines()
    assert answers[0].startswith("[1] 200")
    assert answers[1].startswith("[2] 200")
    assert "duplicate" in answers[1]

    tampered = storewire(
        "send", "shopify", "orders/create", str(PAYLOADS / "orders_create.json"), "--tamper",
        cwd=workdir, env=env,
    )  # fmt: skip
    assert tampered.stdout.startswith("[1] 401"), tampered.stdout

    # an API Gateway event file works too: its body is what gets signed and sent
    event_file = REPO_ROOT / "events" / "shopify_orders_paid.json"
    paid = storewire("send", "shopify", "orders/paid", str(event_file), cwd=workdir, env=env)
    assert paid.stdout.startswith("[1] 200"), paid.stdout

    order_id = str(json.loads((PAYLOADS / "orders_create.json").read_bytes())["id"])
    listed = storewire(
        "events", "--order", order_id, "--type", "OrderPlaced", "--json", cwd=workdir
    )
    assert listed.exit_code == 0, listed.output
    events = json.loads(listed.stdout)
    assert [e["detail"]["delivery_id"] for e in events] == [webhook_id]
    assert {"detail-type", "source", "time", "detail"} <= set(events[0])
    canonical = events[0]["detail"]["order_id"]
    by_canonical = json.loads(storewire("events", "--order", canonical, cwd=workdir).stdout)
    assert {e["detail-type"] for e in by_canonical} >= {"OrderPlaced", "OrderPaymentReported"}


def test_local_invoke_reuses_the_running_emulator(local_up: Any, tmp_path: Path) -> None:
    workdir, _proc, _lines = local_up
    event_file = REPO_ROOT / "events" / "shopify_customers_create.json"
    result = storewire(
        "local", "invoke", "WebhookIngestFunction", "-e", str(event_file), cwd=workdir
    )
    # the committed sample is signed with the dev secret, not the one this emulator was given
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["statusCode"] in (200, 401)
    assert "using the running emulator" in result.stderr


def test_local_invoke_runs_a_committed_sample_event_as_sam_local_invoke_would(
    tmp_path: Path,
) -> None:
    # Given no running emulator, the development secret, and a sample recorded days ago
    event_file = REPO_ROOT / "events" / "shopify_orders_create.json"

    # When it is invoked, as `sam local invoke -e` would
    result = storewire(
        "local", "invoke", "WebhookIngestFunction", "-e", str(event_file),
        "--template", str(REPO_ROOT / "template.yaml"), "--no-reuse",
        cwd=tmp_path, env={"SHOPIFY_WEBHOOK_SECRET": "shpss_storewire_dev_secret"},
    )  # fmt: skip

    # Then the handler accepts it (the delivery time is re-stamped; the signature still holds)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["status"] == "accepted"


def test_local_invoke_without_fresh_keeps_the_recorded_time_and_is_refused_as_stale(
    tmp_path: Path,
) -> None:
    event = json.loads((REPO_ROOT / "events" / "shopify_orders_create.json").read_text())
    event["headers"]["x-shopify-triggered-at"] = "2020-01-01T00:00:00Z"
    event_file = tmp_path / "old.json"
    event_file.write_text(json.dumps(event))

    result = storewire(
        "local", "invoke", "WebhookIngestFunction", "-e", str(event_file),
        "--template", str(REPO_ROOT / "template.yaml"), "--no-reuse", "--no-fresh",
        cwd=tmp_path, env={"SHOPIFY_WEBHOOK_SECRET": "shpss_storewire_dev_secret"},
    )  # fmt: skip

    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["error"]["type"] == "StaleWebhook"


def test_local_up_stops_cleanly_on_sigterm(local_up: Any) -> None:
    workdir, proc, _lines = local_up
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "the earlier tests should have started a warm worker"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not (workdir / ".storewire" / "local.json").exists()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.05)
    assert not [c for c in children if Path(f"/proc/{c}").exists()], "workers left running"


def test_local_invoke_standalone(tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"kind": "from-cli"}))
    ok = storewire(
        "local", "invoke", "ScheduledFunction", "-e", str(event_file),
        "--template", str(FIXTURE_TEMPLATE), cwd=tmp_path,
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"seen": "from-cli"}
    assert "START RequestId" in ok.stderr  # function logs go to stderr

    event_file.write_text(json.dumps({"rawPath": "/any/raise"}))
    failed = storewire(
        "local", "invoke", "EchoFunction", "-e", str(event_file),
        "--template", str(FIXTURE_TEMPLATE), cwd=tmp_path,
    )  # fmt: skip
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["errorMessage"] == "boom"

    missing = storewire(
        "local", "invoke", "NoSuchFunction", "--template", str(FIXTURE_TEMPLATE), cwd=tmp_path
    )
    assert missing.exit_code == 2
    assert "NoSuchFunction" in missing.stderr
