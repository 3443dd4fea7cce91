"""`timm:<model name>[@random|@weights file]` encoders (EVA-02, NFNet, any timm ViT or CNN: `TimmVisionEncoder`).

Offline, a plain name needs the weights in the Hugging Face cache (where timm keeps nearly all, as `timm/<name>`);
`@random` needs none; `@file` needs the file. The patch grid is known once the model is built (the build checks the
token count then)."""
from __future__ import annotations

import glob
from pathlib import Path

from ablate.config.errors import CellCheckError
from ablate.config.spec import Spec
from ablate.models.families.base import Family, hub_offline

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def timm_repo_cached(name: str) -> bool:
    """Weights of `timm/<name>` or `timm/<name>.<tag>` in the Hugging Face cache (where timm keeps nearly all)."""
    from huggingface_hub.constants import HF_HUB_CACHE  # lazy: only for timm specs

    stem = f"models--timm--{name}"
    for repo in Path(HF_HUB_CACHE).glob(glob.escape(stem) + "*"):
        if repo.name == stem or repo.name.startswith(stem + "."):
            if any(next((repo / "snapshots").glob(f"*/{file}"), None) for file in WEIGHT_FILES):
                return True
    return False


def check_timm(key: str, spec: Spec) -> None:
    """`@random` needs no weights; `@file` needs the file; plain names need the weights in the HF cache offline."""
    if spec.weights == "random":
        return
    if spec.weights:
        if not spec.path.is_file():
            raise CellCheckError(key, f"timm weights file {spec.weights!r} does not exist")
        return
    if not hub_offline() or timm_repo_cached(spec.name):
        return           # online: timm downloads them; or cached under timm/<name>[.<tag>] (no timm import)
    try:
        import timm  # the exact check (hub id of the default weights) needs timm's registry, hence torch
        from huggingface_hub import try_to_load_from_cache  # lazy: only for grids that name hub weights
    except ImportError:
        return           # the build says timm is missing
    if not timm.is_model(spec.name):
        raise CellCheckError(key, f"unknown timm model {spec.name!r} (timm.list_models() lists them)")
    pretrained = timm.models.get_pretrained_cfg(spec.name)
    repo = getattr(pretrained, "hf_hub_id", None) if pretrained is not None else None
    if repo is None or not any(isinstance(try_to_load_from_cache(repo, f), str) for f in WEIGHT_FILES):
        raise CellCheckError(key, f"the weights of timm model {spec.name!r} ({repo or 'no hub id'}) are not in the "
                                  "local Hugging Face cache and HF_HUB_OFFLINE is set: download them once when "
                                  f"online, or use timm:{spec.name}@/path/to/weights.safetensors or "
                                  f"timm:{spec.name}@random (architecture only)")


class Timm(Family):
    name = "timm"
    forms = {"encoder": "timm:<model name>[@random|@weights file]"}

    def check(self, spec: Spec, role: str, key: str) -> None:
        check_timm(key, spec)

    def needs_hub(self, spec: Spec) -> bool:
        return not spec.weights

    def build_encoder(self, cfg, spec: Spec, cache_root: Path):
        from ablate.models.encoders.timm_encoder import TimmVisionEncoder  # lazy: torch for the build only

        return TimmVisionEncoder(cfg, spec.ref)
