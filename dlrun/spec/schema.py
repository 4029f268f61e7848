"""The JSON Schema of a spec, for editors: every field with its description and allowed values."""

from __future__ import annotations

import json
from typing import Any

from dlrun.spec import names
from dlrun.spec.models import Spec


def spec_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of the YAML spec."""
    schema = Spec.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    defs = schema["$defs"]
    optimizer = defs["OptimizerSpec"]
    optimizer["properties"]["name"]["enum"] = sorted(names.OPTIMIZERS)
    # The Keras kwargs each optimizer takes, so an editor can complete `beta_1`, `momentum`, ...
    optimizer["properties"].update(
        {
            key: {"description": f"Keras optimizer argument (default {default!r})."}
            for kwargs in names.OPTIMIZERS.values()
            for key, default in kwargs.items()
            if key != "learning_rate"
        }
    )
    optimizer["additionalProperties"] = False
    training = defs["TrainingSpec"]["properties"]
    # A bare name is accepted too (`optimizer: adam`); pydantic only sees the object after normalizing.
    training["optimizer"] = {
        "description": training["optimizer"].get("description", ""),
        "anyOf": [{"type": "string", "enum": sorted(names.OPTIMIZERS)}, {"$ref": "#/$defs/OptimizerSpec"}],
        "default": "adam",
    }
    return schema


def schema_text() -> str:
    """Return the schema as the JSON text `dlrun schema` writes."""
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"
