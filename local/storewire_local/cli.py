"""The `storewire` command line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from .backfill import backfill_app
from .channel_cli import channel_app
from .ops_cli import dlq_app, replay_command
from .reconcile_cli import reconcile_command
from .stock_cli import order_app, stock_app

app = typer.Typer(help="Storewire: run the event graph locally and operate it.")
local_app = typer.Typer(help="The Docker-free local emulator (sam local for the whole graph).")
send_app = typer.Typer(help="Send signed webhooks, as the senders would.")
app.add_typer(local_app, name="local")
app.add_typer(send_app, name="send")
app.add_typer(stock_app, name="stock")
app.add_typer(order_app, name="order")
app.add_typer(channel_app, name="channel")
app.add_typer(dlq_app, name="dlq")
app.command("replay")(replay_command)
app.command("reconcile")(reconcile_command)
app.add_typer(backfill_app, name="backfill")

DEFAULT_STATE_DIR = Path(".storewire")

TemplateOption = Annotated[
    Path, typer.Option("--template", "-t", help="The SAM template (the only source of truth).")
]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="Where local.json and the function logs go.")
]


@app.callback()
def main() -> None:
    """Storewire command line."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# ---------------------------------------------------------------- storewire local up


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="HTTP API port (0 picks a free one).")] = 3000,
    template: TemplateOption = Path("template.yaml"),
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    aws_port: Annotated[int, typer.Option(help="moto port (0 picks a free one).")] = 0,
    schedules: Annotated[bool, typer.Option(help="Fire Schedule events on their rate.")] = True,
    echo_logs: Annotated[bool, typer.Option(help="Echo function logs to the console.")] = True,
    warm: Annotated[bool, typer.Option(help="Start every function's worker at boot.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the whole graph locally until SIGINT/SIGTERM."""
    _setup_logging(verbose)
    from .emulator import Emulator
    from .emulator.cfn import TemplateError
    from .state import remove_state, write_state

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator = Emulator(
            template,
            port=port,
            state_dir=state_dir,
            moto_port=aws_port,
            fire_schedules=schedules,
            echo_logs=echo_logs,
        )
        emulator.start()
    except (TemplateError, OSError) as exc:
        raise _fail(str(exc)) from exc
    try:
        if warm:
            emulator.warm()
        info = emulator.info()
        path = write_state(state_dir, info)
        typer.echo(
            f"storewire local ready: {emulator.api_url} "
            f"(AWS endpoint {emulator.aws_endpoint_url}, state {path}, "
            f"started in {emulator.started_seconds:.2f}s)",
        )
        for route in info["routes"]:
            typer.echo(f"  route    {route}")
        for schedule in info["schedules"]:
            typer.echo(f"  schedule {schedule}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        typer.echo("storewire local: stopping", err=True)
    finally:
        emulator.stop()
        remove_state(state_dir, os.getpid())
    typer.echo("storewire local: stopped", err=True)


# ---------------------------------------------------------------- storewire local invoke


@local_app.command("invoke")
def local_invoke(
    function: Annotated[str, typer.Argument(help="Logical id, e.g. WebhookIngestFunction.")],
    event: Annotated[
        Path | None, typer.Option("--event", "-e", help="Event JSON file ('-' for stdin).")
    ] = None,
    template: TemplateOption = Path("template.yaml"),
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    reuse: Annotated[
        bool, typer.Option(help="Use the running emulator found in local.json, if any.")
    ] = True,
    fresh: Annotated[
        bool,
        typer.Option(
            help="Stamp delivery-time headers (X-Shopify-Triggered-At) with the current time, "
            "so a sample recorded days ago is not refused as stale. Signatures cover the body "
            "only, so they stay valid."
        ),
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one function once (like `sam local invoke`, without Docker); print its result."""
    _setup_logging(verbose)
    if event is None:
        payload: Any = {}
    elif str(event) == "-":
        payload = json.loads(sys.stdin.read() or "{}")
    else:
        try:
            payload = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read event {event}: {exc}") from exc
    if fresh:
        payload = restamp_delivery_time(payload)

    from .state import running_state

    running = running_state(state_dir) if reuse else None
    if running is not None:
        import httpx

        typer.echo(f"using the running emulator (pid {running['pid']})", err=True)
        answer = httpx.post(
            f"{running['aws_endpoint_url']}/_storewire/invoke/{function}",
            json=payload,
            timeout=900,
        )
        if answer.status_code == 404:
            raise _fail(answer.json().get("message", "no such function"))
        outcome = answer.json()
    else:
        from .emulator import Emulator, InvocationError
        from .emulator.cfn import TemplateError
        from .emulator.stack import Stack

        try:
            known = Stack(template).functions()
        except TemplateError as exc:
            raise _fail(str(exc)) from exc
        if function not in known:
            names = ", ".join(sorted(known)) or "none"
            raise _fail(f"no AWS::Serverless::Function {function!r} in {template} ({names})")
        try:
            emulator = Emulator(
                template,
                state_dir=state_dir,
                serve_api=False,
                pollers=False,
                fire_schedules=False,
                echo_logs=True,
            )
            emulator.start()
        except TemplateError as exc:
            raise _fail(str(exc)) from exc
        try:
            outcome = {"ok": True, "result": emulator.invoke(function, payload)}
        except InvocationError as exc:
            outcome = {"ok": False, "error": exc.error}
        except KeyError as exc:
            raise _fail(str(exc.args[0])) from exc
        finally:
            emulator.stop()
    if outcome.get("ok"):
        typer.echo(json.dumps(outcome.get("result"), indent=2))
        return
    typer.echo(json.dumps(outcome.get("error"), indent=2))
    raise typer.Exit(1)


DELIVERY_TIME_HEADERS = ("x-shopify-triggered-at",)


def restamp_delivery_time(event: Any, now: dt.datetime | None = None) -> Any:
    """The event with its senders' delivery-time headers set to ``now`` (others untouched)."""
    if not isinstance(event, dict) or not isinstance(event.get("headers"), dict):
        return event
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds")
    headers = {
        name: stamp.replace("+00:00", "Z") if name.lower() in DELIVERY_TIME_HEADERS else value
        for name, value in event["headers"].items()
    }
    return {**event, "headers": headers}


# ---------------------------------------------------------------- storewire send shopify


def _api_url(url: str | None, state_dir: Path) -> str:
    if url:
        return url.rstrip("/")
    from .state import read_state

    data = read_state(state_dir)
    if not data or not data.get("api_url"):
        raise _fail(f"no running emulator ({state_dir / 'local.json'}); start `storewire local up`")
    return str(data["api_url"]).rstrip("/")


@send_app.command("shopify")
def send_shopify(
    topic: Annotated[str, typer.Argument(help="Webhook topic, e.g. orders/create.")],
    file: Annotated[Path, typer.Argument(help="Raw payload JSON, or an API Gateway event file.")],
    url: Annotated[str | None, typer.Option(help="API base URL (default: local.json).")] = None,
    times: Annotated[int, typer.Option(help="Send it N times (same webhook id).")] = 1,
    shop: Annotated[str, typer.Option(help="X-Shopify-Shop-Domain.")] = "",
    webhook_id: Annotated[str | None, typer.Option(help="X-Shopify-Webhook-Id.")] = None,
    secret: Annotated[
        str | None, typer.Option(help="Signing secret (default $SHOPIFY_WEBHOOK_SECRET).")
    ] = None,
    tamper: Annotated[bool, typer.Option(help="Send a signature that does not match.")] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Sign a payload as Shopify does and POST it to /webhooks/shopify."""
    import httpx

    from .signing import DEFAULT_SHOPIFY_SECRET, payload_from_file, shopify_headers

    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc}") from exc
    body, event_headers = payload_from_file(raw)
    key = secret or os.environ.get("SHOPIFY_WEBHOOK_SECRET") or DEFAULT_SHOPIFY_SECRET
    shop_domain = (
        shop or event_headers.get("x-shopify-shop-domain") or "storewire-demo.myshopify.com"
    )
    delivery = webhook_id or str(uuid.uuid4())
    event_id = str(uuid.uuid4())  # one event, delivered N times: ids and trigger time repeat
    triggered_at = dt.datetime.now(dt.UTC)
    target = f"{_api_url(url, state_dir)}/webhooks/shopify"
    worst = 0
    with httpx.Client(timeout=60) as client:
        for attempt in range(1, max(1, times) + 1):
            headers = shopify_headers(
                topic,
                body,
                secret=key,
                shop=shop_domain,
                webhook_id=delivery,
                event_id=event_id,
                triggered_at=triggered_at,
                tamper=tamper,
            )
            try:
                answer = client.post(target, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise _fail(f"POST {target}: {exc}") from exc
            typer.echo(f"[{attempt}] {answer.status_code} {answer.text}")
            worst = max(worst, answer.status_code)
    if worst >= 500:
        raise typer.Exit(1)


# ---------------------------------------------------------------- storewire events


@app.command("events")
def events(
    order: Annotated[
        str | None, typer.Option(help="detail.order_id or detail.external_order_id.")
    ] = None,
    detail_type: Annotated[str | None, typer.Option("--type", help="detail-type.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print compact JSON.")] = False,
    stack: Annotated[
        str | None, typer.Option(help="Read a deployed stack's event log group instead.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (with --stack).")] = None,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Print the EventBridge envelopes put on the bus, oldest first, as a JSON array."""
    from .events_query import filter_events, local_events, stack_events, stack_log_group

    if stack:
        import boto3

        session = boto3.session.Session(region_name=region)
        try:
            group = stack_log_group(session.client("cloudformation"), stack)
        except LookupError as exc:
            raise _fail(str(exc)) from exc
        found = stack_events(session.client("logs"), group, order, detail_type)
    else:
        from .state import read_state

        data = read_state(state_dir)
        if not data:
            raise _fail(f"no running emulator ({state_dir / 'local.json'}); use --stack or `up`")
        import httpx

        try:
            found = filter_events(local_events(data["aws_endpoint_url"]), order, detail_type)
        except httpx.HTTPError as exc:
            raise _fail(f"emulator not reachable: {exc}") from exc
    typer.echo(json.dumps(found, indent=None if as_json else 2))
