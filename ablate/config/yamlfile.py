"""Read a grid's YAML strictly, so that careless or hostile input is refused at once, with a line number:

- a file that is not UTF-8 text (a binary file given as the grid);
- a duplicate key at any depth (PyYAML keeps the last one silently: `axes:` twice turns 4 cells into 1);
- a non-finite float anywhere (`.inf`, `.nan`, `1e999`), an integer of more than `MAX_DIGITS` digits;
- aliases that expand past `MAX_NODES` ("billion laughs" lists, alias bombs of mappings) or refer to themselves:
  the size of what the document expands to is counted on the composed node graph (each distinct node once) before
  anything is constructed or walked, so a bomb is refused in milliseconds.

`read_yaml(path) -> (data, lines)`: the document and the 1-based line of every dotted key path as written.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from ablate.config.errors import GridError

MAX_NODES = 200_000          # nodes of the expanded document (a scalar counts 1 per started KiB of text)
MAX_BYTES = 8 * 2**20        # a grid file is a few KB; refuse what cannot be one before parsing it

_MERGE = "tag:yaml.org,2002:merge"
_FLOAT = "tag:yaml.org,2002:float"
_INT = "tag:yaml.org,2002:int"
MAX_DIGITS = 100             # no setting takes a number near this long (Python refuses to read one of 4,300 digits)


class _TooBig(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


class _Recursive(Exception):
    pass


def read_yaml(path: Path) -> tuple[object, dict[str, int]]:
    """The document in `path` and `{dotted key path: line}`; any problem raises `GridError` naming the line."""
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise GridError(path, f"cannot read the grid file: {err.strerror or err}") from None
    if len(blob) > MAX_BYTES:
        raise GridError(path, f"the file has {len(blob):,} bytes; a grid file is a small YAML text file "
                              f"(at most {MAX_BYTES // 2**20} MiB)")
    if b"\x00" in blob[:65536]:
        raise GridError(path, "not a text file (it holds NUL bytes): a grid file is a YAML text file")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as err:
        line = blob[:err.start].count(b"\n") + 1
        raise GridError(path, f"not UTF-8 text (byte {err.start}): a grid file is a YAML text file",
                        line=line) from None
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise GridError(path, f"not valid YAML: {getattr(err, 'problem', None) or err}",
                            line=mark.line + 1 if mark else None) from None
        except RecursionError:
            raise GridError(path, "not valid YAML: nested too deeply") from None
        if node is None:
            return None, {}
        try:
            _expanded_size(node, MAX_NODES)
        except _TooBig as err:
            raise GridError(path, f"this value expands to more than {MAX_NODES:,} nodes through aliases (&anchor / "
                                  "*alias): a grid file is a few hundred lines; refusing it", key=err.key or None,
                            line=_line_of(node, err.key)) from None
        except (_Recursive, RecursionError):
            raise GridError(path, "an alias (*name) refers to the node that contains it, or the document is "
                                  "nested too deeply") from None
        lines: dict[str, int] = {}
        _walk(path, loader, node, "", lines)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise GridError(path, f"not valid YAML: {getattr(err, 'problem', None) or err}",
                            line=mark.line + 1 if mark else None) from None
        except (ValueError, TypeError) as err:   # e.g. a timestamp PyYAML cannot represent
            raise GridError(path, f"not valid YAML: {err}") from None
        return data, lines
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document with every alias expanded, computed once per distinct node. Past `limit`, raises
    `_TooBig` with the dotted key of the first (innermost) value found too big."""
    memo: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: yaml.Node, where: str) -> int:
        ident = id(node)
        if ident in memo:
            return memo[ident]
        if ident in busy:
            raise _Recursive()
        busy.add(ident)
        if isinstance(node, yaml.ScalarNode):
            total = 1 + len(node.value) // 1024
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child, where) for child in node.value)
        else:
            total = 1
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                total += size(key_node, where) + size(value_node, f"{where}.{name}" if where else name)
        busy.discard(ident)
        if total > limit:
            raise _TooBig(where)
        memo[ident] = total
        return total

    return size(root, "")


def _line_of(root: yaml.Node, dotted: str) -> int | None:
    """The line of a dotted key path in a composed document (without walking what aliases expand to)."""
    node, line = root, None
    for part in dotted.split(".") if dotted else []:
        if not isinstance(node, yaml.MappingNode):
            return line
        match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and str(k.value) == part), None)
        if match is None:
            return line
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _walk(path: Path, loader: yaml.SafeLoader, node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    """Record key lines; refuse duplicate keys and non-finite floats (the expanded size is already bounded)."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT and len(node.value) > MAX_DIGITS:
            raise GridError(path, f"a number of {len(node.value):,} digits: no setting takes a number that big",
                            key=prefix or None, line=node.start_mark.line + 1)
        if node.tag == _FLOAT:
            try:
                value = loader.construct_yaml_float(node)
            except ValueError:      # `!!float abc`: construction reports it
                return
            if not math.isfinite(value):
                raise GridError(path, f"{node.value!r} is not a finite number: infinities and NaN are not allowed "
                                      "anywhere in a grid", key=prefix or None, line=node.start_mark.line + 1)
        return
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _walk(path, loader, child, prefix, lines)
        return
    seen: dict[tuple[str, str], int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:   # `<<: *base`: its keys belong to this mapping; explicit keys may override them
            _walk(path, loader, value_node, prefix, {})
            continue
        name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        dotted = f"{prefix}.{name}" if prefix else name
        line = key_node.start_mark.line + 1
        if isinstance(key_node, yaml.ScalarNode):
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise GridError(path, f"duplicate key (first written on line {seen[ident]}): YAML would silently "
                                      "keep only the last one; write each key once", key=dotted, line=line)
            seen[ident] = line
        lines.setdefault(dotted, line)
        _walk(path, loader, value_node, dotted, lines)
