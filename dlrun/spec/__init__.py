"""The spec: YAML with positions, the pydantic models, the Keras names a spec may use, the JSON Schema."""
