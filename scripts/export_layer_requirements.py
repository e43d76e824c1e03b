"""Export layers/storewire/requirements.txt from uv.lock: the Lambda layer's runtime packages only.

The layer ships what the handlers import at run time and the Lambda runtime does not provide:
Powertools, pydantic and httpx, with everything they depend on, at the exact versions in uv.lock
(so the layer matches the local environment byte for byte in versions). boto3/botocore are left
out: the python3.13 runtime provides them. moto, rich, typer, pyyaml (the emulator and CLI) and
the dev group never reach the layer.

    python3 scripts/export_layer_requirements.py          # rewrite the file
    python3 scripts/export_layer_requirements.py --check  # exit 1 if the file is out of date

Standard library only (tomllib), so it runs the same anywhere, with or without uv.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
TARGET = ROOT / "layers" / "storewire" / "requirements.txt"

# The project's direct runtime dependencies that belong in the layer.
LAYER_ROOTS = ("aws-lambda-powertools", "pydantic", "httpx")
# Provided by the Lambda python runtime: never packaged, even when something depends on them.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})

# The environment the layer runs in, for any environment markers in the lock.
LAMBDA_ENV = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": "3.13",
    "python_full_version": "3.13.0",
}

HEADER = """\
# The Lambda layer's runtime packages, exported from uv.lock. DO NOT EDIT BY HAND.
# Regenerate after changing pyproject.toml / uv.lock:
#     python3 scripts/export_layer_requirements.py
# Check (CI):  python3 scripts/export_layer_requirements.py --check
# Roots: {roots}. Left out: boto3/botocore (the runtime provides them),
# the emulator/CLI packages (moto, rich, typer, pyyaml) and the dev group.
"""


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _marker_applies(marker: str | None) -> bool:
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - only when a marker appears and packaging is absent
        sys.exit(
            f"uv.lock has an environment marker ({marker!r}) in the layer closure; "
            "run with `uv run --frozen python scripts/export_layer_requirements.py`"
        )
    for machine in ("aarch64", "x86_64"):
        env = {**LAMBDA_ENV, "platform_machine": machine}
        if Marker(marker).evaluate(env):
            return True
    return False


def export(lock_path: Path = LOCK) -> str:
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    packages: dict[str, list[dict[str, Any]]] = {}
    for pkg in lock["package"]:
        packages.setdefault(_norm(pkg["name"]), []).append(pkg)

    def find(dep: dict[str, Any]) -> dict[str, Any]:
        candidates = packages[_norm(str(dep["name"]))]
        if "version" in dep:
            candidates = [p for p in candidates if p["version"] == dep["version"]]
        if len(candidates) != 1:
            sys.exit(f"uv.lock: cannot pick one version of {dep['name']}: {candidates!r}")
        return candidates[0]

    project = next(p for p in lock["package"] if {"editable", "virtual"} & set(p.get("source", {})))
    roots = [d for d in project.get("dependencies", []) if _norm(d["name"]) in LAYER_ROOTS]
    missing = set(LAYER_ROOTS) - {_norm(d["name"]) for d in roots}
    if missing:
        sys.exit(f"uv.lock: the project does not depend on {sorted(missing)}")

    pinned: dict[str, str] = {}
    queue: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        (d, tuple(d.get("extra", []))) for d in roots
    ]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while queue:
        dep, extras = queue.pop()
        name = _norm(str(dep["name"]))
        if name in RUNTIME_PROVIDED or not _marker_applies(dep.get("marker")):
            continue
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        pkg = find(dep)
        pinned[name] = str(pkg["version"])
        children = list(pkg.get("dependencies", []))
        optional = pkg.get("optional-dependencies", {})
        for extra in extras:
            children.extend(optional.get(extra, []))
        for child in children:
            queue.append((child, tuple(child.get("extra", []))))

    body = "".join(f"{name}=={pinned[name]}\n" for name in sorted(pinned))
    return HEADER.format(roots=", ".join(LAYER_ROOTS)) + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args()
    text = export()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            rel = TARGET.relative_to(ROOT)
            print(f"{rel} is out of date with uv.lock; run python3 scripts/{Path(__file__).name}")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
