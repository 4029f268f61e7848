"""The JSON Schema of a spec, for editors: every field with its description and allowed values."""

from __future__ import annotations

import json
from typing import Any

from dlrun.spec.models import Spec


def spec_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of the YAML spec, generated from the spec models alone."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Spec.model_json_schema(mode="validation")}


def schema_text() -> str:
    """Return the schema as the JSON text `dlrun schema` writes."""
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"
