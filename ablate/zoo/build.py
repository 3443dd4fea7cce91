"""The zoo's cache: `cache_root/zoo/<name>-<recipe hash>/`, built on first use, atomically.

A folder counts as built when its `zoo.json` (recipe + metrics, written last) exists. Builds happen in a hidden
temporary folder renamed into place, under a file lock, so parallel workers build each model once. When the package
ships weights for the same recipe hash (`ablate.zoo.shipped`), they are verified and copied in instead of training.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from ablate.config.spec import zoo_name
from ablate.zoo import shipping
from ablate.zoo.data import ZooData, world_data
from ablate.zoo.recipes import RECIPES, Recipe, recipe_for, recipe_hash, world_identity

log = logging.getLogger(__name__)
MARKER = shipping.MARKER   # zoo.json: recipe + metrics, written last


def zoo_dir(cache_root: Path) -> Path:
    return Path(cache_root) / "zoo"


def model_dir(spec: str, cache_root: Path, recipe: Recipe | None = None, data_identity: str | None = None) -> Path:
    """Where `spec` (`zoo:clip-s` or `clip-s`) lives for its recipe and data."""
    name = zoo_name(spec)
    recipe = recipe or recipe_for(name)
    identity = data_identity if data_identity is not None else world_identity(recipe.world)
    return zoo_dir(cache_root) / f"{name}-{recipe_hash(recipe, identity)}"


def ensure_built(spec: str, cache_root: Path, recipe: Recipe | None = None, data: ZooData | None = None,
                 log_fn=None, force: bool = False) -> Path:
    """The folder of `spec` (an HF `save_pretrained` folder): the cached one, else the package's shipped weights
    for the same recipe hash, else trained here. `force`: train here even when cached or shipped, and replace the
    cached folder.

    `recipe` and `data` default to the registered recipe and the embedded world it names.
    """
    name = zoo_name(spec)
    recipe = recipe or recipe_for(name)
    folder = model_dir(name, cache_root, recipe, data.identity if data is not None else None)
    if not force and (folder / MARKER).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if not force and (folder / MARKER).is_file():
            return folder
        say = log_fn or log.info
        if not force and _install_shipped(name, folder, say):
            return folder
        start = time.perf_counter()
        data = data or world_data(recipe.world, Path(cache_root))
        with _staging(folder) as staged:
            tmp = Path(staged)
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
            _move_into_place(tmp, folder)
        say(f"zoo:{name} built in {time.perf_counter() - start:.1f} s -> {folder}")
    return folder


def shipped_folder(spec: str) -> Path | None:
    """The package's shipped weights for `spec`'s current recipe, if any (not yet verified: `ensure_built` does)."""
    return shipping.find(model_dir(spec, Path(".")).name)


def _install_shipped(name: str, folder: Path, say) -> bool:
    """Copy the package's shipped `folder.name` into the cache, verified; False when none ships or it is corrupt."""
    source = shipping.find(folder.name)
    if source is None:
        return False
    try:
        with _staging(folder) as staged:
            tmp = Path(staged)
            shipping.install(source, tmp)
            _move_into_place(tmp, folder)
    except (shipping.CorruptShipped, OSError) as err:   # OSError: an unreadable file, a copy that failed
        log.warning("zoo:%s: the shipped weights in %s are corrupt (%s): not used, training here instead",
                    name, source, err)
        return False
    say(f"zoo:{name}: using the weights shipped with ablate for recipe {shipping.split_name(folder.name)[1]} "
        f"(trained by this recipe when they were shipped, not on this machine); to train them here: "
        f"{shipping.retrain_command(name)}")
    return True


def _staging(folder: Path) -> tempfile.TemporaryDirectory:
    """A hidden temporary folder beside `folder`, removed on exit unless it was moved into place."""
    return tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-", ignore_cleanup_errors=True)


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Rename `tmp` to `folder`; an existing `folder` (stale from a crash, or replaced by --force) is moved aside
    first and removed after, so `folder` is never half-written (readers wait on the lock while it is absent)."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-old-"))
        folder.rename(old / folder.name)
    tmp.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_zoo(names: list[str] | None, cache_root: Path, log_fn=print, force: bool = False) -> list[Path]:
    """Build the named zoo models (`["zoo:clip-s", "lm-s"]`; None or `["all"]`: every one); `force`: train them
    here even when cached or shipped."""
    names = list(RECIPES) if not names or names == ["all"] else names
    return [ensure_built(n, cache_root, log_fn=log_fn, force=force) for n in names]


class ZooEntry(NamedTuple):
    spec: str
    built: bool             # in the cache, ready to load
    folder: Path
    metrics: dict | None    # retrieval / perplexity, from zoo.json
    origin: str             # "built here", "shipped" (installed from the package) or "" (not in the cache)
    shipped: str            # the package ships weights for this recipe: "yes", "stale" (another recipe) or "no"


def zoo_status(cache_root: Path) -> list[ZooEntry]:
    """Every registered zoo model: in the cache or not, from where, its metrics, whether the package ships it."""
    rows = []
    for name in RECIPES:
        folder = model_dir(name, cache_root)
        marker = folder / MARKER
        built = marker.is_file()
        metrics = json.loads(marker.read_text())["metrics"] if built else None
        origin = ("shipped" if shipping.is_shipped_install(folder) else "built here") if built else ""
        rows.append(ZooEntry(f"zoo:{name}", built, folder, metrics, origin, shipping.state(name, folder.name)))
    return rows


def ship_zoo(names: list[str], cache_root: Path, where: Path | None = None) -> list[tuple[Path, dict]]:
    """Copy the named models' built cache folders into the package's shipped weights (maintainers;
    docs/backbones.md, "Shipped weights"). Each must be built here for its current recipe."""
    out = []
    for spec in names:
        name = zoo_name(spec)
        folder = model_dir(name, cache_root)
        if not (folder / MARKER).is_file():
            raise ValueError(f"zoo:{name} is not built in {cache_root} for its current recipe ({folder.name}): "
                             f"build it first ({shipping.retrain_command(name)})")
        out.append(shipping.ship(folder, where))
    return out
