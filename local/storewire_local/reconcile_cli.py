"""`storewire reconcile orders|stock|payments [--since ISO8601]`: one reconciliation, now.

Locally it invokes `ReconciliationFunction` once through the running emulator
(`POST {aws_endpoint_url}/_storewire/invoke/ReconciliationFunction`, as `storewire local
invoke` does); with `--stack NAME` it invokes the deployed function (Lambda `Invoke`,
synchronous; the function is found as the stack's `ReconciliationFunction` resource). It
prints the run's counts (`--json`: as JSON), the same ones `ReconciliationCompleted` carries.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

FUNCTION = "ReconciliationFunction"
KINDS = ("orders", "stock", "payments")

StackOption = Annotated[
    str | None, typer.Option("--stack", help="A deployed stack instead of the local emulator.")
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (with --stack).")]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="Where the running emulator's local.json is.")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def request(kind: str, since: str | None, shop: str | None) -> dict[str, Any]:
    """The invoke payload (what the schedules' Input carries, plus the options)."""
    if kind not in KINDS:
        raise _fail(f"KIND must be one of {', '.join(KINDS)}")
    payload: dict[str, Any] = {"kind": kind}
    if since:
        try:
            parsed = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(f"--since is not ISO 8601: {since!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        payload["since"] = parsed.isoformat()
    if shop:
        payload["shop"] = shop
    return payload


def invoke_local(payload: dict[str, Any], state_dir: Path) -> Any:
    import httpx

    from .state import running_state

    running = running_state(state_dir)
    if running is None:
        raise _fail(f"no running emulator ({state_dir / 'local.json'}); use --stack or `up`")
    answer = httpx.post(
        f"{running['aws_endpoint_url']}/_storewire/invoke/{FUNCTION}", json=payload, timeout=900
    )
    if answer.status_code == 404:
        raise _fail(answer.json().get("message", f"no function {FUNCTION}"))
    outcome = answer.json()
    if not outcome.get("ok"):
        typer.echo(json.dumps(outcome.get("error"), indent=2), err=True)
        raise typer.Exit(1)
    return outcome.get("result")


def invoke_stack(payload: dict[str, Any], stack: str, region: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=region)
    try:
        name = session.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=FUNCTION
        )["StackResourceDetail"]["PhysicalResourceId"]
        answer = session.client("lambda", config=Config(read_timeout=900)).invoke(
            FunctionName=name, Payload=json.dumps(payload).encode()
        )
    except (BotoCoreError, ClientError) as exc:
        raise _fail(f"cannot invoke {FUNCTION} of stack {stack}: {exc}") from exc
    result = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        typer.echo(json.dumps(result, indent=2), err=True)
        raise typer.Exit(1)
    return result


def summary(result: dict[str, Any]) -> str:
    kind = result.get("kind")
    parts = [f"{kind}: checked {result.get('checked', 0)}, corrected {result.get('corrected', 0)}"]
    if kind == "orders":
        parts.append(
            f"missing {result.get('missing', 0)}, behind {result.get('behind', 0)}, "
            f"re-emitted {result.get('republished', 0)} events in {result.get('pages', 0)} pages"
        )
        parts.append(f"watermark {result.get('watermark')}")
    if result.get("failed"):
        parts.append(f"failed {result['failed']}")
    if not result.get("complete", True):
        parts.append("stopped early (the next run continues)")
    return "; ".join(parts)


def reconcile_command(
    kind: Annotated[str, typer.Argument(help="orders | stock | payments")],
    since: Annotated[
        str | None,
        typer.Option(help="orders: list from this ISO 8601 time instead of the watermark."),
    ] = None,
    shop: Annotated[str | None, typer.Option(help="The shop (default: the function's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    stack: StackOption = None,
    region: RegionOption = None,
    state_dir: StateDirOption = Path(".storewire"),
) -> None:
    """Run one reconciliation now and print its counts."""
    from rich.console import Console

    payload = request(kind, since, shop)
    console = Console(stderr=True)
    with console.status(f"reconciling {kind}…"):
        result = invoke_stack(payload, stack, region) if stack else invoke_local(payload, state_dir)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not isinstance(result, dict):
        raise _fail(f"unexpected answer: {result!r}")
    typer.echo(summary(result))
    for correction in result.get("corrections") or []:
        typer.echo(f"  {json.dumps(correction, sort_keys=True)}")
