"""The zoo's cache: `cache_root/zoo/<name>-<recipe hash>/`, built on first use, atomically.

A folder counts as built when its `zoo.json` (recipe + metrics, written last) exists. Builds happen in a hidden
temporary folder renamed into place, under a file lock, so parallel workers build each model once.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock

from ablate.config.spec import zoo_name
from ablate.zoo.data import ZooData, world_data
from ablate.zoo.recipes import RECIPES, Recipe, recipe_for, recipe_hash, world_identity

log = logging.getLogger(__name__)
MARKER = "zoo.json"


def zoo_dir(cache_root: Path) -> Path:
    return Path(cache_root) / "zoo"


def model_dir(spec: str, cache_root: Path, recipe: Recipe | None = None, data_identity: str | None = None) -> Path:
    """Where `spec` (`zoo:clip-s` or `clip-s`) lives for its recipe and data."""
    name = zoo_name(spec)
    recipe = recipe or recipe_for(name)
    identity = data_identity if data_identity is not None else world_identity(recipe.world)
    return zoo_dir(cache_root) / f"{name}-{recipe_hash(recipe, identity)}"


def ensure_built(spec: str, cache_root: Path, recipe: Recipe | None = None, data: ZooData | None = None,
                 log_fn=None) -> Path:
    """The folder of `spec` (an HF `save_pretrained` folder), training it first when missing.

    `recipe` and `data` default to the registered recipe and the embedded world it names.
    """
    name = zoo_name(spec)
    recipe = recipe or recipe_for(name)
    folder = model_dir(name, cache_root, recipe, data.identity if data is not None else None)
    if (folder / MARKER).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / MARKER).is_file():
            return folder
        say = log_fn or log.info
        start = time.perf_counter()
        data = data or world_data(recipe.world, Path(cache_root))
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        try:
            if recipe.kind == "lm":
                from ablate.zoo.language import train_lm  # lazy: the training code only when a backbone is built

                metrics = train_lm(recipe, data, tmp, log=say)
            else:
                from ablate.zoo.vision import train_encoder  # lazy: as above

                metrics = train_encoder(recipe, data, tmp, log=say)
            metrics["build_s"] = round(time.perf_counter() - start, 1)
            (tmp / MARKER).write_text(json.dumps(
                {"spec": f"zoo:{name}", "kind": recipe.kind, "recipe": asdict(recipe), "data": data.identity,
                 "metrics": metrics}, indent=2))
            if folder.exists():  # a stale, unmarked folder from a crash
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        say(f"zoo:{name} built in {time.perf_counter() - start:.1f} s -> {folder}")
    return folder


def build_zoo(names: list[str] | None, cache_root: Path, log_fn=print) -> list[Path]:
    """Build the named zoo models (`["zoo:clip-s", "lm-s"]`; None or `["all"]`: every one)."""
    names = list(RECIPES) if not names or names == ["all"] else names
    return [ensure_built(n, cache_root, log_fn=log_fn) for n in names]


def zoo_status(cache_root: Path) -> list[tuple[str, bool, Path, dict | None]]:
    """`(spec, built?, path, metrics)` for every registered zoo model (metrics: retrieval / perplexity)."""
    rows = []
    for name in RECIPES:
        folder = model_dir(name, cache_root)
        marker = folder / MARKER
        metrics = json.loads(marker.read_text())["metrics"] if marker.is_file() else None
        rows.append((f"zoo:{name}", marker.is_file(), folder, metrics))
    return rows
