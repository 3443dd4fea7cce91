"""Training defaults per backbone kind, and `lr_multipliers` given in part laid over them.

The zoo's tiny LLMs keep the harness's tuned values (`train.lr` 2e-3; multipliers encoder 0, connector 1, llm 0.5).
A pretrained LLM (`hf:` hub id or folder, `gguf:` file) gets the values of LLaVA-style recipes: the LLM frozen
unless asked, the connector at 1e-3; with LoRA the adapters train at 2e-4 (x0.2). A fully trained pretrained LLM
is asked for with `lr_multipliers.llm` (0.02 gives LLaVA's 2e-5). docs/backbones.md, "Training defaults", is the
table.

Only values the user left out are filled in, and a partial `lr_multipliers` (`train.lr_multipliers.llm: [0.5, 0]`
as an axis) keeps the defaults of the modules it does not name. The cell's config holds the values that train, so
its canonical dump (and id) says what ran; a zoo cell dumps exactly as before.
"""
from __future__ import annotations

from typing import Any

from ablate.config.spec import Spec, SpecError

ZOO: dict[str, Any] = {"lr": 2e-3, "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.5}}
PRETRAINED: dict[str, Any] = {"lr": 1e-3, "lr_multipliers": {"encoder": 0.0, "connector": 1.0, "llm": 0.0}}
PRETRAINED_LORA_LLM = 0.2    # x 1e-3: LoRA adapters at 2e-4 (LLaVA-1.5's LoRA recipe)


def llm_kind(llm_name: str | None) -> str:
    """`zoo` for the zoo's LMs (the schema's own defaults are theirs), `pretrained` for every other family (hf:,
    gguf:, any family registered later); a malformed name counts as zoo (its validation reports it)."""
    try:
        family = Spec.parse(llm_name or "zoo:lm-s").family
    except SpecError:
        return "zoo"
    return "zoo" if family == "zoo" else "pretrained"


def train_defaults(llm_name: str | None, lora: bool = False) -> dict[str, Any]:
    """`{"lr": ..., "lr_multipliers": {...}}` for a cell whose LLM is `llm_name` (LoRA on or off)."""
    if llm_kind(llm_name) == "zoo":
        return {"lr": ZOO["lr"], "lr_multipliers": dict(ZOO["lr_multipliers"])}
    out = {"lr": PRETRAINED["lr"], "lr_multipliers": dict(PRETRAINED["lr_multipliers"])}
    if lora:
        out["lr_multipliers"]["llm"] = PRETRAINED_LORA_LLM
    return out


def merged_multipliers(given: dict | None, defaults: dict) -> dict:
    """`given` laid over `defaults` (None: the defaults). Modules keep the defaults' order, so a full mapping
    given in that order dumps as it always did."""
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        return given            # the field's own validation says what is wrong
    return {**defaults, **given}


def fill_cell(data: Any) -> Any:
    """A cell's raw input with the training values it left out filled in from its LLM's kind (the cell's
    `model_validator(mode="before")`). Values given are kept; a partial `lr_multipliers` is merged."""
    if not isinstance(data, dict):
        return data
    llm = data.get("llm")
    if isinstance(llm, dict):
        name, lora = llm.get("name"), llm.get("lora") is not None
    elif llm is None:
        name, lora = None, False
    else:   # an LLMConfig
        name, lora = getattr(llm, "name", None), getattr(llm, "lora", None) is not None
    train = data.get("train")
    if train is None:
        train = {}
    elif not isinstance(train, dict):
        if not hasattr(train, "model_fields_set"):
            return data
        # a TrainConfig: what it was given explicitly (its multipliers were already merged over the zoo's)
        train = {k: getattr(train, k) for k in train.model_fields_set}
    defaults = train_defaults(name, lora)
    filled = dict(train)
    filled.setdefault("lr", defaults["lr"])
    filled["lr_multipliers"] = merged_multipliers(train.get("lr_multipliers"), defaults["lr_multipliers"])
    if llm_kind(name) == "zoo" and "train" not in data:
        return data     # nothing to fill: the zoo's values are the fields' own defaults
    return {**data, "train": filled}
