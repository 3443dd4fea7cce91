"""Backbone families (`zoo:`, `hf:`, `timm:`, `gguf:`): one `Family` object each, in one registry."""
from ablate.models.families.base import ENCODER, LLM, Family, patch_grid
from ablate.models.families.registry import FAMILIES, families, family, forms, parse, spec_family

__all__ = ["ENCODER", "LLM", "FAMILIES", "Family", "families", "family", "forms", "parse", "patch_grid",
           "spec_family"]

