"""The report as one self-contained HTML file: same blocks as the PDF, figures inlined as base64 PNG.

A table of contents (a sidebar on wide screens, at the top on narrow ones) links every section, table and
figure; each top-level heading opens a `<section>` with an anchor, and each section ends with a link back up.
"""
from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from .document import (
    Bullets,
    Document,
    ExamplesBlock,
    FigureBlock,
    Heading,
    KeyValues,
    Para,
    TableBlock,
)
from .tables import Table, shown_labels

CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#111;font-size:14px;line-height:1.4}
.subtitle{color:#666;margin:0} h1.title{margin-top:0.2em}
table.kv td{padding:2px 10px 2px 0;vertical-align:top} table.kv td:first-child{font-weight:bold;white-space:nowrap}
.tablewrap{overflow-x:auto;margin:0.4em 0 1.6em}
table.res{border-collapse:collapse;font-size:12.5px}
table.res th{background:#e0e6ee;text-align:right;padding:4px 7px;border-bottom:1.5px solid #333;vertical-align:bottom}
table.res td{padding:3px 7px;text-align:right;vertical-align:top;white-space:nowrap}
table.res th.l,table.res td.l{text-align:left}
table.res tr:nth-child(even) td{background:#f4f6f9}
table.res tr.baseline td{background:#deecfa}
table.res td.failed{color:#961919;font-style:italic;text-align:left;white-space:normal}
table.res td.missing{color:#5f5f5f;font-style:italic;text-align:left;white-space:normal}
table.res td .sub{color:#444;font-size:11px}
.caption{font-size:12.5px;color:#333} .note{font-size:12px;color:#555;margin:0.1em 0}
table.ex td img{width:72px;height:auto;image-rendering:pixelated}
td.correct{color:#006e3c;font-weight:bold} td.wrong{color:#aa1919;font-weight:bold} td.partly{font-weight:bold}
.empty{color:#5f5f5f;font-style:italic}
figure{margin:1em 0 2em} figure img{max-width:100%} figcaption{font-size:12.5px;color:#333}
table.res tr.reference td{background:#fff;color:#5f5f5f;font-style:italic;border-top:1px solid #bbb}
nav.toc{font-size:12.5px;line-height:1.5;border:1px solid #dde;background:#f8f9fb;padding:0.6em 1em;margin:1em 0}
nav.toc ul{list-style:none;padding-left:0;margin:0} nav.toc ul ul{padding-left:1.1em}
nav.toc a{color:#0b4f8a;text-decoration:none} nav.toc a:hover{text-decoration:underline}
nav.toc .toc-title{font-weight:bold;margin:0 0 0.3em}
a.top{font-size:12px;color:#666}
h2,h3,figure{scroll-margin-top:1em}
@media (min-width:1500px){body{margin-left:300px}
nav.toc{position:fixed;top:1em;left:1em;width:250px;max-height:calc(100vh - 4em);overflow-y:auto;margin:0}}
"""


def _cell_html(lines: list[str], bold: bool) -> str:
    if not lines:
        return ""
    first = escape(lines[0])
    first = f"<strong>{first}</strong>" if bold else first
    rest = "".join(f'<br><span class="sub">{escape(x)}</span>' for x in lines[1:])
    return first + rest


def table_html(table: Table, number: int, anchor: str | None = None) -> str:
    shown = shown_labels(table)
    out = [f'<h3 id="{escape(anchor or "table-" + table.slug)}">Table {number}. {escape(table.title)}</h3>',
           f'<p class="caption">{escape(table.caption)}</p>', '<div class="tablewrap"><table class="res">',
           "<thead><tr>" + "".join(f'<th class="{"" if table.is_right(j) else "l"}">{escape(h)}</th>'
                                   for j, h in enumerate(table.header)) + "</tr></thead><tbody>"]
    for r, row in enumerate(table.rows):
        tds, col = [], 0
        for k, c in enumerate(row.cells):
            lines = [""] if k < table.n_axes and shown[r][k] is None else c.lines
            if c.span > 1:
                tds.append(f'<td class="{row.kind}" colspan="{c.span}">{_cell_html(lines, c.bold)}</td>')
            else:
                tds.append(f'<td class="{"" if table.is_right(col) else "l"}">{_cell_html(lines, c.bold)}</td>')
            col += c.span
        out.append(f'<tr class="{row.kind}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    out += [f'<p class="note">{escape(note)}</p>' for note in table.footnotes]
    return "\n".join(out)


def _image(path) -> str:
    if path is None:
        return '<span class="empty">(image not on this machine)</span>'
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="" src="data:image/png;base64,{data}">'


def examples_html(block: ExamplesBlock, anchor: str | None = None) -> str:
    ex = block.examples
    attr = f' id="{escape(anchor)}"' if anchor else ""
    out = [f"<h3{attr}>{escape(ex.title)}</h3>", f'<p class="caption">{escape(ex.caption)}</p>',
           '<div class="tablewrap"><table class="res ex"><thead><tr>'
           + "".join(f'<th class="l">{h}</th>' for h in ("Image", "Task", "Question", "Prediction", "Reference",
                                                          "Verdict"))
           + "</tr></thead><tbody>"]
    for e in ex.examples:
        pred = escape(e.prediction) if e.prediction.strip() else '<span class="empty">(empty)</span>'
        task = escape(e.task) + (f'<br><span class="sub">{escape(e.qtype)}</span>' if e.qtype else "")
        refs = escape(" | ".join(dict.fromkeys(e.references)) or "—")
        out.append(f'<tr><td class="l">{_image(e.image)}</td><td class="l">{task}</td>'
                   f'<td class="l" style="white-space:normal">{escape(e.question)}</td><td class="l">{pred}</td>'
                   f'<td class="l">{refs}</td><td class="l {e.verdict.split()[0]}">{escape(e.verdict)}</td></tr>')
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def anchors(doc: Document) -> list[tuple[int, str, str, object]]:
    """(level, anchor id, text, block) of every heading, table, figure and sample set, in order; ids unique."""
    out, seen = [], set()
    for b in doc.blocks:
        if isinstance(b, Heading):
            level, text = b.level, b.text
        elif isinstance(b, TableBlock):
            level, text = 3, f"Table {b.number}. {b.table.title}"
        elif isinstance(b, FigureBlock):
            level, text = 3, f"Figure {b.number}. {_short_caption(b.caption)}"
        elif isinstance(b, ExamplesBlock):
            level, text = 3, b.examples.title
        else:
            continue
        base = (f"table-{b.table.slug}" if isinstance(b, TableBlock) else f"figure-{b.number}"
                if isinstance(b, FigureBlock) else _slug(text))
        anchor, n = base, 2
        while anchor in seen:
            anchor, n = f"{base}-{n}", n + 1
        seen.add(anchor)
        out.append((level, anchor, text, b))
    return out


def _short_caption(caption: str, limit: int = 60) -> str:
    """'Score vs image resolution, one panel per ...' -> 'Score vs image resolution'."""
    first = re.split(r"[.,:;] ", caption, maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def toc_html(entries: list[tuple[int, str, str, object]]) -> str:
    """Nested list: top-level sections, then their subsections, tables and figures."""
    out, open_sub = ['<nav class="toc" id="contents"><p class="toc-title">Contents</p><ul>'], False
    for level, anchor, text, _ in entries:
        link = f'<a href="#{anchor}">{escape(text)}</a>'
        if level == 1:
            if open_sub:
                out.append("</ul></li>")
                open_sub = False
            out.append(f"<li>{link}")
            out.append("<ul>")
            open_sub = True
        else:
            if not open_sub:
                out.append("<li><ul>")
                open_sub = True
            out.append(f"<li>{link}</li>")
    if open_sub:
        out.append("</ul></li>")
    out.append("</ul></nav>")
    return "".join(out).replace("<ul></ul>", "")


def render(doc: Document, path: Path) -> Path:
    entries = anchors(doc)
    ids = {id(block): anchor for _, anchor, _, block in entries}
    parts = [f'<p class="subtitle">{escape(doc.subtitle)}</p>', f'<h1 class="title">{escape(doc.title)}</h1>',
             toc_html(entries), "<section>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            tag = "h2" if b.level == 1 else "h3"
            if b.level == 1:
                parts.append('<p><a class="top" href="#contents">↑ contents</a></p></section><section>')
            parts.append(f'<{tag} id="{ids[id(b)]}">{escape(b.text)}</{tag}>')
        elif isinstance(b, Para):
            parts.append(f"<p>{escape(b.text)}</p>")
        elif isinstance(b, KeyValues):
            parts.append('<table class="kv">' + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                                                        for k, v in b.rows) + "</table>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in b.items) + "</ul>")
        elif isinstance(b, TableBlock):
            parts.append(table_html(b.table, b.number, ids[id(b)]))
        elif isinstance(b, ExamplesBlock):
            parts.append(examples_html(b, ids[id(b)]))
        elif isinstance(b, FigureBlock):
            data = base64.b64encode(Path(b.path).read_bytes()).decode()
            parts.append(f'<figure id="{ids[id(b)]}"><img alt="Figure {b.number}" src="data:image/png;base64,{data}">'
                         f"<figcaption>Figure {b.number}. {escape(b.caption)}</figcaption></figure>")
    parts.append('<p><a class="top" href="#contents">↑ contents</a></p></section>')
    parts.append(f'<p class="note">{escape(doc.footer)}</p>')
    html = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(doc.title)}: '
            f"{escape(doc.subtitle)}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")
    path.write_text(html, encoding="utf-8")
    return path
