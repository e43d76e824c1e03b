from __future__ import annotations

import json
from types import ModuleType

from samples import REPO_ROOT
from storewire.domain.events import EVENT_MODELS

SCHEMAS_DIR = REPO_ROOT / "docs" / "schemas"


def test_given_the_event_models_when_schemas_are_generated_then_the_committed_ones_match(
    schema_generator: ModuleType,
) -> None:
    generator = schema_generator

    generated = generator.schemas()

    committed = {p.name for p in SCHEMAS_DIR.glob("*.json")}
    assert committed == set(generated), "run: uv run --frozen python scripts/generate_schemas.py"
    for name, schema in generated.items():
        on_disk = (SCHEMAS_DIR / name).read_text(encoding="utf-8")
        assert on_disk == generator.render(schema), (
            f"docs/schemas/{name} is stale: run scripts/generate_schemas.py"
        )


def test_given_every_event_type_when_catalogued_then_docs_events_md_describes_it() -> None:
    catalogue = (REPO_ROOT / "docs" / "events.md").read_text(encoding="utf-8")

    for event_type, version in EVENT_MODELS:
        assert f"## {event_type}" in catalogue
        assert f"schemas/{event_type}.v{version}.json" in catalogue
        assert json.loads((SCHEMAS_DIR / f"{event_type}.v{version}.json").read_text())["title"]
