"""`zoo:<objective>-<size>` encoders and `zoo:lm-<size>` LMs: the tiny backbones pretrained here (`ablate.zoo`)."""
from __future__ import annotations

from pathlib import Path

from ablate.config.errors import CellCheckError
from ablate.config.spec import Spec
from ablate.models.families.base import ENCODER, Family
from ablate.zoo.recipes import RECIPES, recipe_for, recipe_hash, world_identity


def zoo_names(role: str) -> list[str]:
    kind = "encoder" if role == ENCODER else "lm"
    return [f"zoo:{name}" for name, recipe in RECIPES.items() if recipe.kind == kind]


class Zoo(Family):
    name = "zoo"
    forms = {"encoder": "zoo:<objective>-<size>", "llm": "zoo:lm-<size>"}

    def check(self, spec: Spec, role: str, key: str) -> None:
        if str(spec) not in zoo_names(role):
            raise CellCheckError(key, f"unknown zoo model {str(spec)!r}", zoo_names(role), str(spec))

    def provenance(self, spec: Spec) -> str | None:
        recipe = RECIPES.get(spec.name)   # an unknown zoo name is reported by the checks, not here
        return None if recipe is None else recipe_hash(recipe, world_identity(recipe.world))

    def patch_size(self, spec: Spec) -> int | None:
        return recipe_for(spec.name).patch

    def build_encoder(self, cfg, spec: Spec, cache_root: Path):
        from ablate.models.encoders.hf import HFVisionEncoder  # lazy: torch and transformers for the build only
        from ablate.zoo import ensure_built

        folder = ensure_built(spec.name, cache_root)
        return HFVisionEncoder(cfg, str(folder), identity=folder.name)

    def load_llm(self, spec: Spec, cache_root: Path) -> tuple:
        from ablate.models.families.hf import load_pretrained  # lazy: transformers for the build only
        from ablate.zoo import ensure_built

        folder = ensure_built(spec.name, cache_root)
        return (*load_pretrained(str(folder)), folder)

    def llm_config(self, spec: Spec):
        """The recipe's Llama shape with a stand-in vocabulary (`ablate.zoo.language.lm_config` has the real one)."""
        from transformers import LlamaConfig  # lazy: only for grids that name LoRA target modules

        r = RECIPES.get(spec.name)
        if r is None or r.kind != "lm":
            return None
        return LlamaConfig(vocab_size=64, hidden_size=r.width, intermediate_size=r.intermediate,
                           num_hidden_layers=r.layers, num_attention_heads=r.heads, num_key_value_heads=r.heads,
                           tie_word_embeddings=True)

    def has_chat_template(self, spec: Spec) -> bool | None:
        return False            # the world's tokenizer: no chat template
