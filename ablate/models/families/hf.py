"""`hf:<hub id or local folder>` encoders (CLIP, SigLIP, SigLIP 2, DINOv2, AIMv2 vision towers) and causal LMs
(AutoModelForCausalLM + AutoTokenizer). A hub id must be in the local Hugging Face cache when the hub cannot be
reached (`HF_HUB_OFFLINE=1`); the patch size and the chat template are read from the folder's JSON files."""
from __future__ import annotations

import json
from pathlib import Path

from ablate.config.errors import CellCheckError
from ablate.config.spec import Spec
from ablate.models.families.base import Family, hub_offline


def load_pretrained(location: str) -> tuple:
    """`(model, tokenizer)` of a causal LM folder or hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: the dry run needs no transformers

    return AutoModelForCausalLM.from_pretrained(location), AutoTokenizer.from_pretrained(location)


def cached_file(ref: str, file: str) -> Path | None:
    """`file` of the local folder `ref`, or of hub id `ref` in the Hugging Face cache; None when neither has it."""
    folder = Path(ref).expanduser()
    if folder.is_dir():
        return folder / file if (folder / file).is_file() else None
    from huggingface_hub import try_to_load_from_cache  # lazy: only for specs that name hub weights

    found = try_to_load_from_cache(ref, file)
    return Path(found) if isinstance(found, str) else None


class HF(Family):
    name = "hf"
    forms = {"encoder": "hf:<hub id or local folder>", "llm": "hf:<hub id or local folder>"}

    def check(self, spec: Spec, role: str, key: str) -> None:
        if Path(spec.ref).expanduser().is_dir() or not hub_offline():
            return        # a local folder; or online: the loader downloads it
        if cached_file(spec.ref, "config.json") is None:
            raise CellCheckError(key, f"{spec.ref!r} is neither a local folder nor in the Hugging Face cache, and "
                                      "the hub cannot be reached offline (HF_HUB_OFFLINE=1): download it once when "
                                      "online (huggingface-cli download ...) or give a local folder")

    def needs_hub(self, spec: Spec) -> bool:
        """A hub id; not a folder that exists or a name written as a path."""
        return not (Path(spec.ref).expanduser().exists() or spec.ref.startswith(("/", ".", "~")))

    def patch_size(self, spec: Spec) -> int | None:
        """From the folder's (or the cached) `config.json`, top level or `vision_config`."""
        file = cached_file(spec.ref, "config.json")
        if file is not None:
            config = json.loads(file.read_text())
            patch = (config.get("vision_config") or config).get("patch_size")
        else:               # online and not cached: transformers fetches the config (a few KB)
            from transformers import AutoConfig  # lazy: only online, for an hf: id that is not cached

            config = AutoConfig.from_pretrained(spec.ref)
            patch = getattr(getattr(config, "vision_config", config), "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[0]
        return int(patch) if isinstance(patch, int) and patch > 0 else None

    def build_encoder(self, cfg, spec: Spec, cache_root: Path):
        from ablate.models.encoders.hf import HFVisionEncoder  # lazy: torch and transformers for the build only

        return HFVisionEncoder(cfg, spec.ref)

    def load_llm(self, spec: Spec, cache_root: Path) -> tuple:
        from ablate.models.encoders.hub import resolve  # lazy: the encoders package imports torch

        location = resolve(spec.ref, "language model")
        return (*load_pretrained(location), location)

    def llm_config(self, spec: Spec):
        file = cached_file(spec.ref, "config.json")
        if file is None:
            return None
        from transformers import AutoConfig  # lazy: only for grids that name LoRA target modules

        try:
            return AutoConfig.from_pretrained(str(file.parent))
        except (OSError, ValueError):
            return None

    def has_chat_template(self, spec: Spec) -> bool | None:
        """From the tokenizer's files (`chat_template.jinja` / `.json`, or `tokenizer_config.json`); None when they
        are not here (a hub id not in the cache)."""
        folder = Path(spec.ref).expanduser()
        if not folder.is_dir():
            config = cached_file(spec.ref, "tokenizer_config.json")
            if config is None:
                return None
            folder = config.parent
        if any((folder / f).is_file() for f in ("chat_template.jinja", "chat_template.json")):
            return True
        try:
            return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
        except (OSError, ValueError):
            return None
