"""The report as one self-contained HTML file: same blocks as the PDF, figures inlined as base64 PNG."""
from __future__ import annotations

import base64
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
"""


def _cell_html(lines: list[str], bold: bool) -> str:
    if not lines:
        return ""
    first = escape(lines[0])
    first = f"<strong>{first}</strong>" if bold else first
    rest = "".join(f'<br><span class="sub">{escape(x)}</span>' for x in lines[1:])
    return first + rest


def table_html(table: Table, number: int) -> str:
    shown = shown_labels(table)
    out = [f'<h3 id="table-{escape(table.slug)}">Table {number}. {escape(table.title)}</h3>',
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


def examples_html(block: ExamplesBlock) -> str:
    ex = block.examples
    out = [f"<h3>{escape(ex.title)}</h3>", f'<p class="caption">{escape(ex.caption)}</p>',
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


def render(doc: Document, path: Path) -> Path:
    parts = [f'<p class="subtitle">{escape(doc.subtitle)}</p>', f'<h1 class="title">{escape(doc.title)}</h1>']
    for b in doc.blocks:
        if isinstance(b, Heading):
            tag = "h2" if b.level == 1 else "h3"
            parts.append(f"<{tag}>{escape(b.text)}</{tag}>")
        elif isinstance(b, Para):
            parts.append(f"<p>{escape(b.text)}</p>")
        elif isinstance(b, KeyValues):
            parts.append('<table class="kv">' + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
                                                        for k, v in b.rows) + "</table>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in b.items) + "</ul>")
        elif isinstance(b, TableBlock):
            parts.append(table_html(b.table, b.number))
        elif isinstance(b, ExamplesBlock):
            parts.append(examples_html(b))
        elif isinstance(b, FigureBlock):
            data = base64.b64encode(Path(b.path).read_bytes()).decode()
            parts.append(f'<figure><img alt="Figure {b.number}" src="data:image/png;base64,{data}">'
                         f"<figcaption>Figure {b.number}. {escape(b.caption)}</figcaption></figure>")
    parts.append(f'<p class="note">{escape(doc.footer)}</p>')
    html = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(doc.title)}: '
            f"{escape(doc.subtitle)}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts)
            + "\n</body></html>\n")
    path.write_text(html, encoding="utf-8")
    return path
