"""`make bench` (`python -m bench`): every section, a table, and bench/results.json.

Each section runs in its own interpreter (`python -m bench.<section> --out FILE`), so moto's
process-wide state, the handlers' module caches and the environment never leak between them.
`--only cold_import,orders` runs a subset; `--orders N` sizes the order mix (default 30, or
$BENCH_ORDERS). The benchmarks report ratios and counts; they assert nothing, and `make test`
never runs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("cold_import", "orders", "ingest_overhead", "layer")
TIMEOUTS = {"cold_import": 240, "orders": 420, "ingest_overhead": 180, "layer": 360}


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "?", False
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "commit": commit + ("+dirty" if dirty else ""),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _run_section(name: str, args: list[str], console: Console) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    started = time.monotonic()
    console.print(f"[dim]· {name} ...[/]")
    try:
        answer = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--out", str(out), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUTS[name],
            check=False,
        )
        if answer.returncode != 0:
            return {"error": f"exit {answer.returncode}", "stderr": answer.stderr[-4000:]}
        result: dict[str, Any] = json.loads(out.read_text())
        result["section_seconds"] = time.monotonic() - started
        return result
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUTS[name]} s"}
    finally:
        out.unlink(missing_ok=True)


def _verdict(ok: bool) -> str:
    return "[green]holds[/]" if ok else "[red]missed[/]"


def show_cold_import(console: Console, r: dict[str, Any]) -> None:
    table = Table(
        title=f"1. Cold import of each handler (best of {r['runs']} fresh interpreters) vs "
        f"import boto3 = {r['boto3_best_ms']:.0f} ms (budget ≤ {r['budget_ratio']}x)",
        title_justify="left",
    )
    columns = (
        "function",
        "best ms",
        "median ms",
        "x boto3",
        "median x",
        "CPU x",
        "budget",
        "top offenders",
    )
    for column in columns:
        numeric = column not in ("function", "budget", "top offenders")
        table.add_column(column, justify="right" if numeric else "left")
    for name, row in r["functions"].items():
        offenders = ", ".join(
            f"{p['package']} {p['self_ms']:.0f}" for p in row["importtime"]["packages"][:5]
        )
        table.add_row(
            name,
            f"{row['best_ms']:.0f}",
            f"{row['median_ms']:.0f}",
            f"{row['ratio']:.2f}",
            f"{row['median_ratio']:.2f}",
            f"{row['cpu_ratio']:.2f}",
            _verdict(row["within_budget"]),
            offenders,
        )
    console.print(table)
    detail = Table(title="   -X importtime: slowest modules (cumulative ms)", title_justify="left")
    detail.add_column("function")
    detail.add_column("top 10 modules")
    for name, row in r["functions"].items():
        detail.add_row(
            name,
            ", ".join(
                f"{m['module']} {m['cumulative_ms']:.0f}" for m in row["importtime"]["modules"]
            ),
        )
    console.print(detail)


def show_orders(console: Console, r: dict[str, Any]) -> None:
    c = r["cost"]
    table = Table(
        title=f"2. AWS requests and cost per order ({r['orders']} orders, "
        f"{r['webhooks']} webhooks; default mix)",
        title_justify="left",
    )
    table.add_column("billed item")
    table.add_column("per order", justify="right")
    table.add_column("US$ / M orders", justify="right")
    for name, line in c["lines"].items():
        table.add_row(name, f"{line['per_order']:.2f}", f"{line['usd_per_million_orders']:.2f}")
    table.add_row(
        "[bold]total[/]",
        "",
        f"[bold]{c['usd_per_million_orders']:.2f}[/]",
    )
    table.add_row(
        "  (total with Lambda at each function's p10 duration)",
        "",
        f"{c['usd_per_million_orders_lambda_at_p10_duration']:.2f}",
    )
    table.add_row(
        "budget ≤ US$10",
        "",
        _verdict(c["usd_per_million_orders"] <= c["budget_usd_per_million_orders"]),
    )
    console.print(table)
    ops = Table(title="   AWS requests per order, by caller and operation", title_justify="left")
    ops.add_column("caller")
    ops.add_column("requests / order (operation)")
    for origin, rows in c["requests_per_order_by_operation"].items():
        ops.add_row(origin, ", ".join(f"{op} {n:.2f}" for op, n in rows.items()))
    by_service = ", ".join(f"{s} {n:.2f}" for s, n in c["requests_per_order_by_service"].items())
    ops.add_row("[bold]by service[/]", by_service)
    console.print(ops)
    fn = Table(title="   Lambda per order, by function", title_justify="left")
    for column in ("function", "invocations", "mean ms", "GB-s", "log bytes", "US$ / M orders"):
        fn.add_column(column, justify="left" if column == "function" else "right")
    for name, row in c["lambda"].items():
        fn.add_row(
            name,
            f"{row['invocations_per_order']:.2f}",
            f"{row['mean_ms']:.0f}",
            f"{row['gb_s_per_order']:.3f}",
            f"{row['log_bytes_per_order']:.0f}",
            f"{row['usd_per_million']:.2f}",
        )
    console.print(fn)
    wru = Table(
        title="   DynamoDB write units per order, by caller and operation", title_justify="left"
    )
    wru.add_column("caller")
    wru.add_column("WRU / order (operation)")
    grouped: dict[str, list[str]] = {}
    for row in sorted(r["counts"]["units_by_request"], key=lambda x: -x["amount"]):
        if row["unit"] == "dynamodb_wru":
            grouped.setdefault(row["origin"], []).append(
                f"{row['operation']} {row['amount'] / r['orders']:.1f}"
            )
    for origin, items in grouped.items():
        wru.add_row(origin, ", ".join(items))
    console.print(wru)
    console.print(
        f"   answers: {r['answers']}; events on the bus: {sum(r['events'].values())} "
        f"({r['events']}); dead letters: {sum(v for v in r['dead_letters'].values() if v > 0)}; "
        f"idle receives (not per order): {r['counts']['empty_receives']}"
    )


def show_ingest(console: Console, r: dict[str, Any], orders: dict[str, Any] | None) -> None:
    table = Table(
        title="3. Ingestion overhead (warm, in-process against moto)", title_justify="left"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("AWS calls per webhook", " + ".join(r["aws_calls_per_webhook"]))
    table.add_row("handler, best round mean", f"{r['handler_best_ms']:.2f} ms")
    table.add_row("floor (same calls, bare boto3)", f"{r['floor_best_ms']:.2f} ms")
    table.add_row("ratio (budget ≤ 1.2x)", f"{r['ratio']:.2f}x {_verdict(r['within_budget'])}")
    table.add_row("median of the per-round ratios (paired)", f"{r['paired_median_ratio']:.2f}x")
    profile = r.get("profile_ms_per_webhook") or {}
    if profile:
        table.add_row(
            "one webhook: inside / outside the AWS client",
            f"{profile['inside_aws_client_ms']:.1f} / {profile['outside_aws_client_ms']:.1f} ms",
        )
        table.add_row(
            "slowest of our code (cumulative)",
            ", ".join(
                f"{row['function'].rsplit('(', 1)[-1].rstrip(')')} {row['cumulative_ms']:.2f}"
                for row in profile["top_functions"][:5]
            ),
        )
    if orders and "latency" in orders:
        lat = orders["latency"]
        table.add_row(
            f"HTTP endpoint under load ({lat['threads']} threads, {lat['requests']} requests)",
            f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, "
            f"{lat['requests_per_second']:.1f} req/s",
        )
    console.print(table)


def show_throughput(console: Console, r: dict[str, Any]) -> None:
    table = Table(
        title="4. Emulator throughput (first webhook to graph idle)", title_justify="left"
    )
    table.add_column("wave")
    table.add_column("webhooks", justify="right")
    table.add_column("seconds", justify="right")
    for phase in r["phases"]:
        table.add_row(phase["wave"], str(phase["webhooks"]), f"{phase['seconds']:.1f}")
    table.add_row(
        "[bold]orders per second[/]", str(r["webhooks"]), f"[bold]{r['orders_per_second']:.2f}[/]"
    )
    console.print(table)


def show_layer(console: Console, r: dict[str, Any]) -> None:
    table = Table(
        title=f"5. Layer ({r['platform']}, CPython {r['python']}): "
        f"{r['unzipped_bytes'] / 1e6:.1f} MB unzipped, {r['zipped_bytes'] / 1e6:.1f} MB zipped",
        title_justify="left",
    )
    table.add_column("package")
    table.add_column("MB unzipped", justify="right")
    for row in r["largest"]:
        table.add_row(row["package"], f"{row['bytes'] / 1e6:.2f}")
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--orders", type=int, default=int(os.environ.get("BENCH_ORDERS", "30")))
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)
    wanted = [s for s in args.only.split(",") if s in SECTIONS]
    results: dict[str, Any] = {"machine": _machine()}
    section_args = {
        "cold_import": ["--runs", str(args.runs)],
        "orders": ["--orders", str(args.orders), "--load-requests", "200", "--load-seconds", "15"],
        "ingest_overhead": [],
        "layer": [],
    }
    for name in (
        "layer",
        "cold_import",
        "ingest_overhead",
        "orders",
    ):  # layer first: cold_import uses its build
        if name in wanted:
            results[name] = _run_section(name, section_args[name], console)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    console.print(
        f"\n[bold]Storewire benchmarks[/] — {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores, Python {results['machine']['python']}, "
        f"commit {results['machine']['commit']}, "
        f"load average {results['machine']['load_average_at_start'][0]:.1f}\n"
    )
    shows = {
        "cold_import": lambda r: show_cold_import(console, r),
        "orders": lambda r: show_orders(console, r),
        "ingest_overhead": lambda r: show_ingest(console, r, results.get("orders")),
        "layer": lambda r: show_layer(console, r),
    }
    for name in SECTIONS:
        if name not in results:
            continue
        if "error" in results[name]:
            console.print(
                f"[red]{name} failed: {results[name]['error']}[/]\n"
                f"{results[name].get('stderr', '')}"
            )
            continue
        shows[name](results[name])
        if name == "orders":
            show_throughput(console, results[name])
    budgets = summary(results)
    results["budgets"] = budgets
    table = Table(title="Budgets", title_justify="left")
    table.add_column("budget")
    table.add_column("measured", justify="right")
    table.add_column("verdict")
    for row in budgets:
        table.add_row(row["budget"], row["measured"], _verdict(row["holds"]))
    console.print(table)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"[dim]written {RESULTS.relative_to(ROOT)}[/]")
    return 0


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    cold = results.get("cold_import") or {}
    if "functions" in cold:
        worst = max(cold["functions"].items(), key=lambda kv: kv[1]["ratio"])
        rows.append(
            {
                "budget": f"cold import ≤ {cold['budget_ratio']}x import boto3, every handler",
                "measured": f"worst {worst[0]} {worst[1]['ratio']:.2f}x",
                "holds": all(f["within_budget"] for f in cold["functions"].values()),
            }
        )
    orders = results.get("orders") or {}
    if "cost" in orders:
        usd = orders["cost"]["usd_per_million_orders"]
        rows.append(
            {
                "budget": "≤ US$10 per million orders (default mix)",
                "measured": f"US${usd:.2f}",
                "holds": usd <= 10.0,
            }
        )
    ingest = results.get("ingest_overhead") or {}
    if "ratio" in ingest:
        rows.append(
            {
                "budget": "ingestion path ≤ 1.2x its bare AWS calls",
                "measured": f"{ingest['ratio']:.2f}x",
                "holds": ingest["within_budget"],
            }
        )
    if "aws_calls_per_webhook" in ingest:
        calls = ingest["aws_calls_per_webhook"]
        writes = sum(c.startswith("dynamodb.") for c in calls)
        ok = writes == 1 and calls.count("events.PutEvents") == 1
        rows.append(
            {
                "budget": "webhook ack: one dedupe write + one PutEvents",
                "measured": " + ".join(calls),
                "holds": ok,
            }
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
