"""``.storewire/local.json``: how the CLI finds a running emulator."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

STATE_FILE = "local.json"


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, info: dict[str, Any]) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_state(state_dir: Path) -> dict[str, Any] | None:
    """The state of an emulator that is alive and answering, else None."""
    data = read_state(state_dir)
    if not data:
        return None
    pid = data.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    try:
        answer = httpx.get(f"{data['aws_endpoint_url']}/_storewire/health", timeout=2)
    except (httpx.HTTPError, KeyError):
        return None
    return data if answer.status_code == 200 else None


def remove_state(state_dir: Path, pid: int) -> None:
    data = read_state(state_dir)
    if data and data.get("pid") == pid:
        state_path(state_dir).unlink(missing_ok=True)
