"""Write docs/schemas/<EventType>.v<version>.json from the canonical event models.

Run `uv run --frozen python scripts/generate_schemas.py` after changing a model;
`tests/unit/test_event_schemas.py` fails while a committed schema differs from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storewire.domain.events import EVENT_MODELS

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (of the serialised `detail`), for every event model."""
    result: dict[str, dict[str, Any]] = {}
    for (event_type, version), model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://storewire.dev/schemas/{event_type}.v{version}.json"
        result[f"{event_type}.v{version}.json"] = schema
    return result


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (SCHEMAS_DIR / name).write_text(render(schema), encoding="utf-8")
        print(f"wrote docs/schemas/{name}")


if __name__ == "__main__":
    main()
