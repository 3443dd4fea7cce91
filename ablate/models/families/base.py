"""`Family`: everything ablate knows about one backbone family (`zoo:`, `hf:`, `timm:`, `gguf:`, ...), in one object.

A family says which roles it fills (image encoder, language model) and the form users write; checks a spec before
anything is built (the file is there, the weights are cached when the hub cannot be reached, the name is known);
gives an encoder's patch size without building it (the grid the connector's token count is checked against); builds
the encoder or loads the LLM; says whether an LLM's tokenizer has a chat template. One object per family, in the
registry (`ablate.models.families.registry.FAMILIES`), as torchtitan keeps one ModelSpec per model family and
prismatic-vlms' registries own construction.

Checks import nothing heavy (the dry run refuses a bad grid without transformers); the builds import torch and the
model libraries inside the method that needs them.
"""
from __future__ import annotations

import os
from pathlib import Path

from ablate.config.errors import CellCheckError
from ablate.config.spec import Spec

ENCODER, LLM = "encoder", "llm"


def hub_offline() -> bool:
    """True when `HF_HUB_OFFLINE` is set (read at call time, so tests and CLIs can set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class Family:
    """Base class: a family overrides what it does; what it leaves out is "not known before the build"."""

    name: str = ""
    forms: dict[str, str] = {}     # role (`encoder` / `llm`) -> the form users write, e.g. "hf:<hub id or folder>"

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.forms)

    # --- specs, before anything is built ------------------------------------------------------------------------
    def check(self, spec: Spec, role: str, key: str) -> None:
        """Raise `CellCheckError` (on `key`, e.g. `encoder.name`) when `spec` cannot be built here."""

    def needs_hub(self, spec: Spec) -> bool:
        """Whether building `spec` may need the Hugging Face hub (a hub id, not a local file)."""
        return False

    def provenance(self, spec: Spec) -> str | None:
        """What the spec's name stands for beyond its text (a zoo recipe's hash), part of the cell id; None: nothing."""
        return None

    # --- encoders -------------------------------------------------------------------------------------------------
    def patch_size(self, spec: Spec) -> int | None:
        """The encoder's patch size without building it; None when only the build knows (the build then checks)."""
        return None

    def build_encoder(self, cfg, spec: Spec, cache_root: Path):
        """A `VisionEncoder` for `cfg` (an `EncoderConfig` whose name is `spec`)."""
        raise ValueError(f"{spec}: the {self.name} family has no image encoders")

    # --- language models ------------------------------------------------------------------------------------------
    def load_llm(self, spec: Spec, cache_root: Path) -> tuple:
        """`(model, tokenizer, location)`: the causal LM and its tokenizer as loaded, and the file or folder they
        came from (its digest identifies the weights) or the hub id."""
        raise ValueError(f"{spec}: the {self.name} family has no language models")

    def llm_config(self, spec: Spec):
        """The LLM's transformers config, read without loading weights (the dry run builds it on the meta device to
        check `llm.lora.target_modules`); None: not readable before the build."""
        return None

    def has_chat_template(self, spec: Spec) -> bool | None:
        """Whether the LLM's tokenizer has a chat template, read without loading the model; None: unknown."""
        return None

    def check_chat_template(self, spec: Spec) -> None:
        """The dry run's refusal of `llm.chat_template: true` for an LLM whose tokenizer has none."""
        if self.has_chat_template(spec) is False:
            raise CellCheckError("llm.chat_template", f"the tokenizer of {spec} has no chat template (a base "
                                                      "model): leave llm.chat_template out")


def patch_grid(patch: int | None, resolution: int, name: str) -> tuple[tuple[int, int] | None, list[str]]:
    """The patch grid at `resolution` for an encoder of patch size `patch` (None: unknown before it is built), and
    warnings; raises `CellCheckError` when the resolution is smaller than one patch."""
    if patch is None:
        return None, []
    if resolution < patch:
        raise CellCheckError("encoder.resolution", f"resolution {resolution} is smaller than the encoder's patch "
                             f"size {patch}", got=resolution)
    warnings = []
    if resolution % patch:
        warnings.append(f"encoder.resolution {resolution} is not a multiple of the patch size {patch} of "
                        f"{name}: the image is seen as a {resolution // patch}x{resolution // patch} patch "
                        f"grid and its last {resolution % patch} px are dropped (use {resolution // patch * patch} "
                        f"or {(resolution // patch + 1) * patch})")
    return (resolution // patch, resolution // patch), warnings
