"""The storewire layer as `sam build` would make it, without SAM: size and largest packages.

`python -m bench.layer [--out FILE]`. `uv pip install --target` of
layers/storewire/requirements.txt for the Lambda platform (arm64: manylinux2014_aarch64,
CPython 3.13, wheels only) plus a copy of the `storewire` package, under `python/` as a layer
zip lays it out; zipped (deflate, level 6, as SAM's zip) and unzipped sizes and the 10 largest
packages. `build()` also makes the host-platform twin that bench.cold_import imports from, so
the cold-start figures see exactly the layer's packages (not the dev venv's extras) and the
runtime's boto3.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER_DIR = ROOT / "layers" / "storewire"
REQUIREMENTS = LAYER_DIR / "requirements.txt"
BUILD_DIR = Path(__file__).resolve().parent / ".build"
LAMBDA_PLATFORM = "aarch64-manylinux2014"
PYTHON_VERSION = "3.13"


def _host_platform() -> str:
    return f"{platform.machine()}-manylinux2014"


def _uv_install(target: Path, args: list[str], python_platform: str) -> None:
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    command = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--python-platform",
        python_platform,
        "--python-version",
        PYTHON_VERSION,
        "--only-binary",
        ":all:",
        *args,
    ]
    subprocess.run(command, check=True, timeout=300, env={**os.environ, "UV_NO_PROGRESS": "1"})


def _stamp(*parts: str) -> str:
    digest = hashlib.sha256()
    digest.update(REQUIREMENTS.read_bytes())
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def build(python_platform: str = LAMBDA_PLATFORM) -> Path:
    """`<build>/<platform>/python`: the layer's third-party packages plus `storewire`."""
    root = BUILD_DIR / python_platform
    site = root / "python"
    stamp = root / ".stamp"
    key = _stamp(python_platform)
    if not (stamp.is_file() and stamp.read_text() == key):
        shutil.rmtree(root, ignore_errors=True)
        site.mkdir(parents=True)
        _uv_install(site, ["-r", str(REQUIREMENTS)], python_platform)
        stamp.write_text(key)
    package = site / "storewire"
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(
        LAYER_DIR / "storewire", package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return site


def runtime_boto3() -> Path:
    """boto3 and botocore at the locked versions, alone, standing in for the Lambda runtime's."""
    versions = {name: importlib.metadata.version(name) for name in ("boto3", "botocore")}
    root = BUILD_DIR / "runtime"
    stamp = root / ".stamp"
    key = json.dumps(versions)
    if not (stamp.is_file() and stamp.read_text() == key):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        pins = [f"{name}=={version}" for name, version in versions.items()]
        _uv_install(root / "site", pins, _host_platform())
        stamp.write_text(key)
    return root / "site"


def host_layer() -> Path:
    return build(_host_platform())


def _zip(site: Path, dest: Path) -> int:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(site.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, Path("python") / path.relative_to(site))
    return dest.stat().st_size


def measure(site: Path, top: int = 10) -> dict[str, Any]:
    sizes: dict[str, int] = defaultdict(int)
    total = 0
    for path in site.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        size = path.stat().st_size
        total += size
        first = path.relative_to(site).parts[0]
        name = first.split("-")[0] if first.endswith((".dist-info", ".data")) else first
        sizes[name.removesuffix(".py")] += size
    zipped = _zip(site, site.parent / "layer.zip")
    return {
        "platform": LAMBDA_PLATFORM,
        "python": PYTHON_VERSION,
        "unzipped_bytes": total,
        "zipped_bytes": zipped,
        "largest": [
            {"package": name, "bytes": size}
            for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
        ],
        "packages": len(sizes),
    }


def run() -> dict[str, Any]:
    return measure(build(LAMBDA_PLATFORM))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = json.dumps(run(), indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
