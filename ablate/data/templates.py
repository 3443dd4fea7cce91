"""Prompt and few-shot templates: `str.format` syntax restricted to plain `{column}` fields.

A template may hold literal text, `{{` / `}}` for a literal brace, and fields that name a column (`{question}`).
Attribute and index access (`{question.__class__}`, `{question[0]}`), conversions (`{question!r}`) and format specs
(`{question:d}`, `{question:>300000000}`) are refused: they expose Python objects, fail on some values only, or
allocate without bound. `template_fields` checks a template (the dry run); `fill_template` renders one without
`str.format`, so a template that escaped the check still cannot do more than insert column values.
"""
from __future__ import annotations

import string


class TemplateError(ValueError):
    """A template that is not plain `{column}` fields and literal text."""


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as err:
        raise TemplateError(f"the template {template!r} is not a valid format string ({err}); write a literal "
                            "brace as {{ or }}") from None


def template_fields(template: str) -> list[str]:
    """The column names a template uses, in order, each once; `TemplateError` for anything but plain fields."""
    names = []
    for _, name, spec, conversion in _parse(template):
        if name is None:
            continue
        if not name or name.isdigit():
            raise TemplateError(f"the template {template!r} has a positional field {{{name}}}: name a column, "
                                "e.g. {question}")
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(f"the template {template!r} has the field {{{shown}}}: a template takes plain "
                                "{column} fields only (no attribute or index access, conversion or format spec)")
        names.append(name)
    return list(dict.fromkeys(names))


def fill_template(template: str, fields: dict) -> str:
    """`template` with each `{name}` replaced by `str(fields[name])`; `KeyError(name)` for a name not in `fields`,
    `TemplateError` for a field that is not plain."""
    out = []
    for literal, name, spec, conversion in _parse(template):
        out.append(literal)
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            template_fields(template)   # raises, naming the field
        if name not in fields:
            raise KeyError(name)
        out.append(str(fields[name]))
    return "".join(out)
