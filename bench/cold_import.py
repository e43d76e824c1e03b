"""Cold import of every function's handler module, as a ratio to `import boto3`.

`python -m bench.cold_import [--runs N] [--out FILE]`. The functions come from template.yaml
(`Stack(template).functions()`), so new ones are measured without touching this file. Each
sample is a fresh interpreter (`python -S`: no site-packages) whose `sys.path` is, as Lambda's
init has it, the function's CodeUri, its layers' directories, the layer's packages built for
this machine's platform (bench.layer: exactly requirements.txt, so not the dev venv's extras
such as rich and click, which httpx would import when present) and boto3/botocore alone at the
locked versions (the runtime's own); it sets the
environment the template gives the function (plus what Lambda sets), and times
`importlib.import_module(<handler module>)` with `perf_counter`. The baseline is the same
interpreter timing `import boto3`. Runs are interleaved (one round = every target once, in a
shuffled order) so the targets share the machine's noise; the figure is best of N.

`python -X importtime` of each handler gives the top offenders: self time summed per
top-level package, and the slowest modules by cumulative time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1.5
BASELINE = "(import boto3)"

PROBE = r"""
import importlib, json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
module = sys.argv[2]
started, cpu = time.perf_counter(), time.process_time()
importlib.import_module(module)
print(json.dumps([time.perf_counter() - started, time.process_time() - cpu]))
"""


def targets(template: Path, layer_site: Path, runtime: Path) -> dict[str, dict[str, Any]]:
    """Per function: the paths, module and environment of its init."""
    from storewire_local.emulator.stack import Stack

    stack = Stack(template)
    found: dict[str, dict[str, Any]] = {}
    for logical_id, spec in stack.functions().items():
        paths = [str(spec.code_dir)]
        for layer in spec.layer_dirs:
            paths.append(str(layer))
            if (layer / "python").is_dir():
                paths.append(str(layer / "python"))
        paths += [str(layer_site), str(runtime)]
        module = spec.handler.rpartition(".")[0].replace("/", ".")
        env = {k: str(v) for k, v in spec.environment.items()}
        env.update(
            {
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
                "AWS_ACCESS_KEY_ID": "dummy",
                "AWS_SECRET_ACCESS_KEY": "dummy",
                "AWS_SESSION_TOKEN": "dummy",
            }
        )
        found[logical_id] = {
            "paths": paths,
            "module": module,
            "env": env,
            "cwd": str(spec.code_dir),
            "handler": spec.handler,
        }
    return found


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    env.update(extra)
    return env


def _sample(paths: list[str], module: str, env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the import in a fresh interpreter."""
    answer = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, json.dumps(paths), module],
        env=_clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{answer.stderr[-2000:]}")
    wall, cpu = json.loads(answer.stdout.strip().splitlines()[-1])
    return float(wall), float(cpu)


def importtime(
    paths: list[str], module: str, env: dict[str, str], cwd: str, top: int = 10
) -> dict[str, Any]:
    """`python -X importtime`: self time per top-level package, slowest modules (cumulative)."""
    code = f"import sys, json; sys.path[:0] = json.loads(sys.argv[1]); import {module}"
    answer = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", code, json.dumps(paths)],
        env=_clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    packages: dict[str, int] = defaultdict(int)
    modules: list[tuple[int, str]] = []
    total = 0
    for line in answer.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        raw = line.split(":", 1)[1].split("|")
        if len(raw) != 3:
            continue
        self_us, cumulative_us, name = int(raw[0]), int(raw[1]), raw[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        name = name.strip()
        if depth <= 1:
            total += cumulative_us
        packages[name.split(".")[0]] += self_us
        modules.append((cumulative_us, name))
    modules.sort(reverse=True)
    seen: set[str] = set()
    modules = [m for m in modules if not (m[1] in seen or seen.add(m[1]))]
    return {
        "total_ms": total / 1000,
        "packages": [
            {"package": p, "self_ms": us / 1000}
            for p, us in sorted(packages.items(), key=lambda kv: -kv[1])[:top]
        ],
        "modules": [
            {"module": m, "cumulative_ms": us / 1000}
            for us, m in modules
            if m not in (module, "encodings", "site", "sitecustomize")
        ][:top],
    }


def run(runs: int = 11, template: Path = ROOT / "template.yaml", seed: int = 7) -> dict[str, Any]:
    from .layer import host_layer, runtime_boto3

    try:
        runtime, layer_site = runtime_boto3(), host_layer()
        faithful = True
    except (OSError, subprocess.SubprocessError) as exc:  # offline: fall back to the dev venv
        print(f"layer build failed ({exc}); importing from the dev venv", file=sys.stderr)
        runtime = layer_site = Path(next(p for p in sys.path if p.endswith("site-packages")))
        faithful = False
    functions = targets(template, layer_site, runtime)
    first = next(iter(functions.values()))
    plan: dict[str, tuple[list[str], str, dict[str, str], str]] = {
        BASELINE: ([str(runtime)], "boto3", {"AWS_REGION": "us-east-1"}, first["cwd"]),
    }
    for logical_id, target in functions.items():
        plan[logical_id] = (target["paths"], target["module"], target["env"], target["cwd"])
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in plan}
    cpu: dict[str, list[float]] = {name: [] for name in plan}
    names = list(plan)
    for name in names:  # warm-up round: compile bytecode, fill the page cache; not counted
        _sample(*plan[name])
    for _ in range(runs):
        rng.shuffle(names)
        for name in names:
            wall, used = _sample(*plan[name])
            samples[name].append(wall)
            cpu[name].append(used)
    boto3_best = min(samples[BASELINE])
    rows = {}
    for logical_id in functions:
        best = min(samples[logical_id])
        rows[logical_id] = {
            "handler": functions[logical_id]["handler"],
            "best_ms": best * 1000,
            "median_ms": sorted(samples[logical_id])[len(samples[logical_id]) // 2] * 1000,
            "ratio": best / boto3_best,
            "median_ratio": statistics.median(samples[logical_id])
            / statistics.median(samples[BASELINE]),
            "within_budget": best / boto3_best <= BUDGET,
            "best_cpu_ms": min(cpu[logical_id]) * 1000,
            "cpu_ratio": min(cpu[logical_id]) / min(cpu[BASELINE]),
            "importtime": importtime(*plan[logical_id]),
        }
    return {
        "layer_faithful": faithful,
        "runs": runs,
        "budget_ratio": BUDGET,
        "boto3_best_ms": boto3_best * 1000,
        "boto3_median_ms": sorted(samples[BASELINE])[runs // 2] * 1000,
        "functions": rows,
        "boto3_best_cpu_ms": min(cpu[BASELINE]) * 1000,
        "samples_ms": {k: [v * 1000 for v in vs] for k, vs in samples.items()},
        "cpu_samples_ms": {k: [v * 1000 for v in vs] for k, vs in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = json.dumps(run(max(7, args.runs)), indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
