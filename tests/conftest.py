"""Shared test helpers: repository paths, the sample events, and loaders for the files that
are not importable packages (a Lambda handler, events/generate.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_module(relative_path: str, name: str) -> ModuleType:
    """Import a repository file by path under a unique module name (once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def schema_generator() -> ModuleType:
    return load_module("scripts/generate_schemas.py", "storewire_generate_schemas")


@pytest.fixture
def events_generator() -> ModuleType:
    return load_module("events/generate.py", "storewire_events_generate")


@pytest.fixture
def webhook_app() -> ModuleType:
    """functions/webhook_ingest/app.py, with its per-cold-start wiring reset."""
    module = load_module("functions/webhook_ingest/app.py", "webhook_ingest_app")
    module._deps = None
    yield module
    module._deps = None
