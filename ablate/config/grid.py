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
The whole grid is validated before anything trains; `GridError` names the file, line, key and allowed values.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ablate.config.errors import GridError
from ablate.config.schema import CellConfig

TOP_LEVEL_KEYS = ["name", "description", "base", "axes", "include", "exclude", "seeds"]


@dataclass(frozen=True)
class Cell:
    """One point of a grid: its validated config and the labels of its swept-axis values."""

    config: CellConfig
    axes: dict[str, Any]

    @property
    def id(self) -> str:
        return self.config.id

    def label(self) -> str:
        """`connector=attn-pool, tokens=144, resolution=160`: an axis is named by its last key, or by its block
        when the last key is `name`."""
        return ", ".join(f"{axis_short_name(k)}={v}" for k, v in self.axes.items())


def axis_short_name(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


@dataclass(frozen=True)
class Grid:
    name: str
    path: Path
    cells: list[Cell]
    axes: list[str]
    base: CellConfig
    description: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)


def load_grid(path: str | Path) -> Grid:
    """Read, expand and validate a grid file. Raises GridError before anything runs."""
    path = Path(path)
    if not path.is_file():
        hint = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise GridError(path, "grid file not found" + (f" (grids next to it: {', '.join(hint)})" if hint else ""))
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise GridError(path, f"not valid YAML: {getattr(err, 'problem', err)}", line=line) from None
    if not isinstance(raw, dict):
        raise GridError(path, "a grid file must be a mapping with keys base/axes", allowed=TOP_LEVEL_KEYS)
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise GridError(path, "unknown top-level key", key=key, line=lines.get(key), allowed=TOP_LEVEL_KEYS, got=key)

    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise GridError(path, "must be a mapping of config blocks", key="base", line=lines.get("base"))
    base_config = _validate(path, base, lines, prefix="base", axes={})

    axes = _read_axes(path, raw, lines)
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())] if axes else [{}]
    excludes = _read_overrides(path, raw, "exclude", lines)
    combos = [c for c in combos if not any(_matches(c, ex, axes) for ex in excludes)]
    base_tree = base_config.model_dump(mode="json")
    for extra in _read_overrides(path, raw, "include", lines):
        named = {k: _Label(v, axes) if k in axes else _Label.plain(v) for k, v in extra.items()}
        seeds = axes.get("train.seed") if "train.seed" not in extra else None
        for seed in seeds or [None]:
            combo = dict(named) if seed is None else {**named, "train.seed": seed}
            for axis in axes:   # an include leaves the other axes at the base value
                combo.setdefault(axis, _Label(_get_dotted(base_tree, axis)))
            combos.append(combo)

    cells, seen = [], set()
    for combo in combos:
        overrides = copy.deepcopy(base)
        for key, value in combo.items():
            _set_dotted(overrides, key, value.value if isinstance(value, _Label) else value)
        labels = {k: (v.label if isinstance(v, _Label) else v) for k, v in combo.items()}
        config = _validate(path, overrides, lines, prefix="axes", axes=labels)
        if config.id not in seen:
            seen.add(config.id)
            cells.append(Cell(config, labels))
    if not cells:
        raise GridError(path, "the grid has no cells left after exclude", key="exclude", line=lines.get("exclude"))

    swept = list(dict.fromkeys([*axes, *(k for c in combos for k in c)]))
    fixed = {k: v for k, v in _flatten(base_config.model_dump(mode="json")).items() if k not in swept}
    return Grid(name=str(raw.get("name") or path.stem), path=path, cells=cells, axes=swept, base=base_config,
                description=str(raw.get("description") or ""), fixed=fixed)


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
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise GridError(path, f"seeds takes a non-empty list of integers, got {seeds!r}", key="seeds",
                            line=lines.get("seeds"))
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


def _matches(combo: dict, pattern: dict, axes: dict) -> bool:
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


def _validate(path: Path, tree: dict, lines: dict, prefix: str, axes: dict) -> CellConfig:
    try:
        config = CellConfig.model_validate(tree)
    except ValidationError as err:
        raise _grid_error_from_pydantic(path, err, lines, prefix, axes) from None
    from ablate.config.checks import check_cell  # registries are imported only when a grid is validated

    try:
        check_cell(config)
    except CellCheckError as err:
        where = _where(axes)
        raise GridError(path, err.message + where, key=err.key, line=_line_for(lines, err.key, axes),
                        allowed=err.allowed, got=err.got) from None
    return config


class CellCheckError(ValueError):
    def __init__(self, key: str, message: str, allowed: list | None = None, got=None):
        super().__init__(message)
        self.key, self.message, self.allowed, self.got = key, message, allowed, got


def _grid_error_from_pydantic(path: Path, err: ValidationError, lines: dict, prefix: str, axes: dict) -> GridError:
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
        message = f"{message} (got {got!r})"
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


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths of a YAML document (as written) to 1-based line numbers."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, key))
    return out


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in ("mixture", "options"):
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out
