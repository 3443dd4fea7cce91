"""Grid files: a base config, axes (cartesian product), include / exclude, seeds.

```yaml
name: connectors
base: {encoder: {name: zoo:clip-s}, train: {steps: 250}}
axes:
  connector.name: [avg-pool, attn-pool, c-abstractor]
  connector.tokens: [64, 144]
  data.mixture:                 # a mapping gives each value a label for tables
    captions: {synthetic: 1.0}
    mm1: {caption: 0.45, interleaved: 0.45, text: 0.1}
exclude: [{connector.name: attn-pool, connector.tokens: 144}]
include: [{connector.name: mlp, connector.tokens: 144}]
seeds: [0, 1]                   # shorthand for the axis train.seed
```
`expand_grid` reads (strictly: `yamlfile.py`), expands and schema-validates a grid as plain data; checks against
the registries and cell ids are `ablate.resolve.load_grid`'s. The whole grid is validated before anything trains;
`GridError` names the file, line, key and allowed values.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablate.config.errors import GridError
from ablate.config.schema import SEED_MAX, CellConfig
from ablate.config.yamlfile import read_yaml

TOP_LEVEL_KEYS = ["name", "description", "base", "axes", "include", "exclude", "seeds"]
CELL_CEILING = 1_000_000   # no grid expands past this unless asked to (`ablate run --max-cells N`)
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")   # a grid's name becomes a folder and an experiment


@dataclass(frozen=True)
class Cell:
    """One point of a grid: its validated config, the labels of its swept-axis values, and its id
    (`ablate.resolve.cell_id`: the canonical config plus what its world and zoo names stand for)."""

    config: CellConfig
    axes: dict[str, Any]
    id: str

    def label(self) -> str:
        """`connector=attn-pool, tokens=144, resolution=160`: an axis is named by its last key, or by its block
        when the last key is `name`."""
        return ", ".join(f"{axis_short_name(k)}={v}" for k, v in self.axes.items())


def axis_short_name(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


@dataclass(frozen=True)
class Grid:
    """A validated grid with identified cells (made by `ablate.resolve.load_grid`)."""

    name: str
    path: Path
    cells: list[Cell]
    axes: list[str]
    base: CellConfig
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expanded:
    """A grid file read and expanded: each point's config passed the schema, nothing else is checked yet."""

    name: str
    path: Path
    points: list[tuple[CellConfig, dict[str, Any]]]   # (config, axis labels), duplicates dropped
    canonical: list[str]                               # each point's `CellConfig.canonical_json()`
    axes: list[str]
    base: CellConfig
    description: str
    fixed: dict[str, Any]
    lines: dict[str, int]

    def error(self, key: str | None, message: str, labels: dict | None = None, allowed: list | None = None,
              got=None) -> GridError:
        """A `GridError` about `key` in the cell with axis `labels`, at the line the key (or its axis) is written."""
        return GridError(self.path, message + _where(labels or {}), key=key,
                         line=_line_for(self.lines, key, labels or {}), allowed=allowed, got=got)


def expand_grid(path: str | Path, max_cells: int | None = None) -> Expanded:
    """Read, expand and schema-validate a grid file (no registries, nothing written). Raises `GridError`.

    `max_cells`: refuse a grid with more cells than this (None: `CELL_CEILING`), before any cell is built.
    """
    path = Path(path)
    if path.is_dir():
        raise GridError(path, "is a folder, not a grid file: give a YAML file, e.g. grids/connectors.yaml")
    if path.exists() and not path.is_file():
        raise GridError(path, "is not a regular file (a device, a pipe or a socket): a grid file is a YAML text file")
    if not path.is_file():
        hint = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise GridError(path, "grid file not found" + (f" (grids next to it: {', '.join(hint)})" if hint else ""))
    raw, lines = read_yaml(path)
    if not isinstance(raw, dict):
        raise GridError(path, "a grid file must be a mapping with keys base/axes", allowed=TOP_LEVEL_KEYS)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise GridError(path, "unknown top-level key", key=str(key), line=lines.get(str(key)),
                            allowed=TOP_LEVEL_KEYS, got=key)
    name = _grid_name(path, raw, lines)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise GridError(path, "takes a text (one string)", key="description", line=lines.get("description"))

    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise GridError(path, "must be a mapping of config blocks", key="base", line=lines.get("base"))
    base_config = _validate(path, base, lines, axes={})

    axes = _read_axes(path, raw, lines)
    base_tree = base_config.model_dump(mode="json")
    combos = _combos(path, raw, lines, axes, base_tree, CELL_CEILING if max_cells is None else max_cells)
    points, canonical, seen = [], [], set()
    for combo in combos:
        overrides = copy.deepcopy(base)
        for key, value in combo.items():
            _set_dotted(overrides, key, value.value if isinstance(value, _Label) else value)
        labels = {k: (v.label if isinstance(v, _Label) else v) for k, v in combo.items()}
        config = _validate(path, overrides, lines, axes=labels)
        text = config.canonical_json()   # the same config twice is one cell (its id would be the same)
        if text not in seen:
            seen.add(text)
            points.append((config, labels))
            canonical.append(text)
    if not points:
        raise GridError(path, "the grid has no cells left after exclude", key="exclude", line=lines.get("exclude"))

    swept = list(dict.fromkeys([*axes, *(k for c in combos for k in c)]))
    fixed = {k: v for k, v in flatten(base_tree).items() if k not in swept}
    return Expanded(name=name, path=path, points=points, canonical=canonical, axes=swept, base=base_config,
                    description=description or "", fixed=fixed, lines=lines)


def _combos(path: Path, raw: dict, lines: dict, axes: dict[str, list[_Label]], base_tree: dict,
            max_cells: int) -> list[dict]:
    """The axis values of every cell: the product of the axes, less the excludes, plus the includes (x seeds)."""
    includes = _read_overrides(path, raw, "include", lines)
    excludes = _read_overrides(path, raw, "exclude", lines)
    product = math.prod(len(v) for v in axes.values()) if axes else 1
    total = product + len(includes) * len(axes.get("train.seed") or [None])
    if total > max_cells:
        sizes = " x ".join(str(len(v)) for v in axes.values()) or "1"
        raise GridError(path, f"the grid has {total:,} cells ({sizes} axis values"
                              f"{f' plus {len(includes)} includes' if includes else ''}), more than the cap of "
                              f"{max_cells:,}: run it with --max-cells {total} if that is what you mean",
                        key="axes", line=lines.get("axes"))
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else [{}]
    for entry in excludes:
        kept = [c for c in combos if not _matches(c, entry)]
        if len(kept) == len(combos):
            raise _no_match(path, entry, axes, lines)
        combos = kept
    for extra in includes:
        named = {k: _Label(v, axes) if k in axes else _Label.plain(v) for k, v in extra.items()}
        seeds = axes.get("train.seed") if "train.seed" not in extra else None
        for seed in seeds or [None]:
            combo = dict(named) if seed is None else {**named, "train.seed": seed}
            for axis in axes:   # an include leaves the other axes at the base value
                combo.setdefault(axis, _Label(_get_dotted(base_tree, axis)))
            combos.append(combo)
    # a key only an include sets is swept too: every other cell has its base value there (a label, never missing)
    for key in dict.fromkeys(k for c in combos for k in c):
        for combo in combos:
            combo.setdefault(key, _Label(_get_dotted(base_tree, key)))
    return combos


def _grid_name(path: Path, raw: dict, lines: dict) -> str:
    """The grid's name (default: the file's stem): a plain name, since it names a folder and an MLflow experiment."""
    if "name" in raw:
        name = raw["name"]
        if not isinstance(name, str) or not PLAIN_NAME.match(name):
            raise GridError(path, f"{name!r} is not a plain name: letters, digits, '.', '_' and '-', starting with "
                                  "a letter or digit, at most 100 characters (it names the report folder and the "
                                  "MLflow experiment, so no slashes or '..')", key="name", line=lines.get("name"))
        return name
    if not PLAIN_NAME.match(path.stem):
        raise GridError(path, f"the file name {path.stem!r} is not a plain name; give the grid one with `name:` "
                              "(letters, digits, '.', '_' and '-')", key="name")
    return path.stem


def _no_match(path: Path, entry: dict, axes: dict, lines: dict) -> GridError:
    """Why an exclude entry removes no cell: a key that is not an axis, a value no axis has, or cells already gone."""
    for key, value in entry.items():
        line = lines.get(f"exclude.{key}") or lines.get("exclude")
        if key not in axes:
            return GridError(path, "an exclude entry can only name swept axes, and this key is not one: the entry "
                                   "matches no cell (a typo?)", key=f"exclude.{key}", line=line, allowed=list(axes),
                             got=key)
        if not any(candidate == value for candidate in axes[key]):
            shown = [c.label for c in axes[key]]
            return GridError(path, f"the value {value!r} is not one of the axis' values: the entry matches no cell "
                                   "(a typo?)", key=f"exclude.{key}", line=line, allowed=shown, got=value)
    return GridError(path, f"the entry {entry!r} matches no cell (an earlier exclude removed them all)",
                     key="exclude", line=lines.get("exclude"))


class _Label:
    """An axis value with the label used for it in tables."""

    def __init__(self, value, axes: dict | None = None, label=None):
        self.value, self.label = value, label if label is not None else _short(value)
        if axes is not None:   # an include naming a labelled value by its label
            for candidate in itertools.chain.from_iterable(axes.values()):
                if candidate.label == value or candidate.value == value:
                    self.value, self.label = candidate.value, candidate.label

    @classmethod
    def plain(cls, value):
        return cls(value)

    def __eq__(self, other):
        other_value = other.value if isinstance(other, _Label) else other
        return self.value == other_value or self.label == other_value


def _short(value) -> Any:
    if isinstance(value, dict):
        return "/".join(f"{k}:{v:g}" if isinstance(v, (int, float)) else f"{k}:{v}" for k, v in value.items())
    return value


def _read_axes(path: Path, raw: dict, lines: dict) -> dict[str, list[_Label]]:
    axes_raw = raw.get("axes") or {}
    if not isinstance(axes_raw, dict):
        raise GridError(path, "must be a mapping from a dotted key (e.g. connector.tokens) to a list of values",
                        key="axes", line=lines.get("axes"))
    axes: dict[str, list[_Label]] = {}
    for key, values in axes_raw.items():
        _check_dotted(path, key, lines.get(f"axes.{key}"))
        if isinstance(values, dict):
            labelled = [_Label(v, label=k) for k, v in values.items()]
        elif isinstance(values, list):
            labelled = [_Label(v) for v in values]
        else:
            raise GridError(path, f"an axis takes a list of values (or a mapping label: value), got {values!r}",
                            key=f"axes.{key}", line=lines.get(f"axes.{key}"))
        if not labelled:
            raise GridError(path, "empty axis: give at least one value", key=f"axes.{key}",
                            line=lines.get(f"axes.{key}"))
        axes[key] = labelled
    seeds = raw.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in seeds):
            raise GridError(path, f"seeds takes a non-empty list of integers from 0 to {SEED_MAX} (numpy's seed "
                                  f"range), got {seeds!r}", key="seeds", line=lines.get("seeds"))
        axes["train.seed"] = [_Label(s) for s in seeds]
    return axes


def _read_overrides(path: Path, raw: dict, key: str, lines: dict) -> list[dict]:
    entries = raw.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise GridError(path, "takes a list of mappings from dotted keys to values", key=key, line=lines.get(key))
    for entry in entries:
        for dotted in entry:
            _check_dotted(path, dotted, lines.get(key))
    return entries


def _matches(combo: dict, pattern: dict) -> bool:
    return all(k in combo and combo[k] == v for k, v in pattern.items())


def _check_dotted(path: Path, dotted: str, line: int | None) -> None:
    """A dotted key must name a field of the cell config (dict-valued fields may go deeper)."""
    model: Any = CellConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return  # inside a dict-valued field (mixture, options): any key is allowed there
        if part not in fields:
            allowed = [".".join([*parts[:i], f]) for f in fields]
            raise GridError(path, "unknown key", key=dotted, line=line, allowed=allowed,
                            got=".".join([*parts[:i], part]))
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) else None
        if model is None and i < len(parts) - 1 and "dict" not in str(annotation):
            raise GridError(path, f"'{part}' is a value, not a block: nothing can follow it", key=dotted, line=line)


def _get_dotted(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _set_dotted(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise ValueError(f"cannot set {dotted}: {part} is not a block")
    tree[parts[-1]] = copy.deepcopy(value)


def _validate(path: Path, tree: dict, lines: dict, axes: dict) -> CellConfig:
    try:
        return CellConfig.model_validate(tree)
    except ValidationError as err:
        raise _grid_error_from_pydantic(path, err, lines, axes) from None


def _grid_error_from_pydantic(path: Path, err: ValidationError, lines: dict, axes: dict) -> GridError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    allowed, got = None, first.get("input")
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        parent = ".".join(str(p) for p in first["loc"][:-1])
        fields = _fields_at(parent)
        allowed = [f"{parent}.{f}" if parent else f for f in fields]
        got = key
        message = "unknown key"
    elif first["type"] == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        allowed = [a.strip().strip("'") for a in expected.replace(" or ", ", ").split(",") if a.strip()]
        message = f"{got!r} is not an allowed value"
    else:
        message = f"{message.removeprefix('Value error, ')} (got {got!r})"
    return GridError(path, message + _where(axes), key=key, line=_line_for(lines, key, axes), allowed=allowed, got=got)


def _fields_at(dotted: str) -> list[str]:
    model: Any = CellConfig
    for part in [p for p in dotted.split(".") if p]:
        fields = getattr(model, "model_fields", {})
        model = fields[part].annotation if part in fields else None
    return list(getattr(model, "model_fields", {}))


def _where(axes: dict) -> str:
    return f" (in the cell {', '.join(f'{k}={v}' for k, v in axes.items())})" if axes else ""


def _line_for(lines: dict, key: str | None, axes: dict) -> int | None:
    if not key:
        return None
    for candidate in (f"axes.{key}", f"base.{key}"):
        if candidate in lines:
            return lines[candidate]
    for axis in axes:   # the error is inside the block an axis sets
        if key.startswith(axis) or axis.startswith(key.split(".")[0]):
            if f"axes.{axis}" in lines:
                return lines[f"axes.{axis}"]
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if f"base.{'.'.join(parts[:i])}" in lines:
            return lines[f"base.{'.'.join(parts[:i])}"]
    return None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A config tree as dotted keys (`connector.name`); `mixture` and `options` stay whole (their keys are data,
    not settings)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in ("mixture", "options"):
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out
