"""The report as a PDF (fpdf2), with DejaVu Sans from matplotlib's wheel so that ±, Δ, †, ‡ print.

Tables never overflow the page: each one takes the first layout that fits its natural column widths among
portrait 9/8 pt and landscape 9/8/7/6.5 pt (a short table tries portrait 7/6.5 pt before turning the page); if
none does, its score columns are split over several tables that repeat the label columns. A table that breaks
across pages repeats its heading row and, on the new page, the row labels that grouping had left blank.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace
from fpdf.table import Table as _FpdfTable
from PIL import Image

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

FONT = "DejaVu"
LAYOUTS = [("P", 9), ("P", 8), ("L", 9), ("L", 8), ("L", 7), ("L", 6.5)]
SHORT_LAYOUTS = [("P", 9), ("P", 8), ("P", 7), ("P", 6.5), ("L", 9), ("L", 8), ("L", 7), ("L", 6.5)]
SHORT = 4  # rows: a table this short is not worth a landscape page of its own when a smaller font fits
PAD = 1.3  # mm, left and right inside a cell
MAX_COL = 62.0  # mm: wider text wraps
GREY = (95, 95, 95)
FILL = (244, 246, 249)
HEAD_FILL = (224, 230, 238)
BASE_FILL = (222, 236, 250)


class _PDF(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        self.add_font(FONT, "", fonts / "DejaVuSans.ttf")
        self.add_font(FONT, "B", fonts / "DejaVuSans-Bold.ttf")
        self.add_font(FONT, "I", fonts / "DejaVuSans-Oblique.ttf")
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)

    def footer(self):
        self.set_y(-11)
        self.set_font(FONT, "", 7)
        self.set_text_color(*GREY)
        self.cell(0, 4, f"{self.footer_text} · page {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)


def _page_width(orientation: str) -> float:
    return (297.0 if orientation == "L" else 210.0) - 30.0


def natural_widths(pdf: FPDF, table: Table, size: float) -> list[float]:
    """Width each column needs (mm) at a font size: widest line of any cell, longest word of the header."""
    widths = [0.0] * len(table.header)
    pdf.set_font(FONT, "B", size)
    for j, h in enumerate(table.header):
        widths[j] = max(pdf.get_string_width(w) for w in h.split() or [""])
    for row in table.rows:
        col = 0
        for c in row.cells:
            if c.span == 1:
                pdf.set_font(FONT, "B" if c.bold else "", size)
                widths[col] = max([widths[col]] + [pdf.get_string_width(x) for x in c.lines])
            col += c.span
    return [min(w, MAX_COL) + 2 * PAD + 0.5 for w in widths]


def plan(pdf: FPDF, table: Table) -> tuple[str, float, list[list[int]]]:
    """(orientation, font size, column groups): one group when the table fits, several when it must split."""
    all_cols = list(range(len(table.header)))
    for orientation, size in SHORT_LAYOUTS if len(table.rows) <= SHORT else LAYOUTS:
        if sum(natural_widths(pdf, table, size)) <= _page_width(orientation):
            return orientation, size, [all_cols]
    orientation, size = LAYOUTS[-1]
    widths = natural_widths(pdf, table, size)
    labels = all_cols[: table.n_label_cols]
    room = _page_width(orientation) - sum(widths[j] for j in labels)
    groups, current, used = [], [], 0.0
    for j in all_cols[table.n_label_cols:]:
        if current and used + widths[j] > room:
            groups.append(labels + current)
            current, used = [], 0.0
        current.append(j)
        used += widths[j]
    groups.append(labels + current)
    return orientation, size, groups


def _orientation(pdf: FPDF) -> str:
    return str(getattr(pdf.cur_orientation, "value", pdf.cur_orientation))[0].upper()


def _start(pdf: _PDF, orientation: str, need: float) -> None:
    if pdf.page == 0 or _orientation(pdf) != orientation or pdf.get_y() + need > pdf.h - pdf.b_margin:
        pdf.add_page(orientation=orientation)


def _text(pdf: _PDF, text: str, size: float, style: str = "", color=(0, 0, 0), gap: float = 1.0) -> None:
    pdf.set_font(FONT, style, size)
    pdf.set_text_color(*color)
    pdf.multi_cell(0, size * 0.45, text, new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_text_color(0)
    pdf.ln(gap)


class _LabelledTable(_FpdfTable):
    """fpdf2's table that, on a data row starting a new page, prints the row labels grouping left blank above
    (`full`: the texts to put back, by row index and cell index). Relies on fpdf2 rendering one row at a time
    through `_render_table_row` after its own page break (fpdf2 2.7-2.8); the blank label is one line like the
    label it stands for, so the row keeps its height."""

    def __init__(self, pdf: FPDF, full: dict[int, dict[int, str]], **kwargs):
        super().__init__(pdf, **kwargs)
        self._full, self._page = full, None

    def _render_table_row(self, i, row_layout_info, cell_x_positions, **kwargs):
        if i >= self._num_heading_rows:
            if self._page is not None and self._fpdf.page != self._page and i in self._full:
                row = self.rows[i]
                for j, text in self._full[i].items():
                    row.cells[j] = replace(row.cells[j], text=text)
            self._page = self._fpdf.page
        return super()._render_table_row(i, row_layout_info, cell_x_positions, **kwargs)


def _table_part(pdf: _PDF, table: Table, cols: list[int], size: float) -> None:
    widths = natural_widths(pdf, table, size)
    w = [widths[j] for j in cols]
    align = ["RIGHT" if table.is_right(j) else "LEFT" for j in cols]
    shown = shown_labels(table)
    full = {r + 1: {k: row.cells[k].lines[0] for k in range(table.n_axes) if shown[r][k] is None}
            for r, row in enumerate(table.rows) if any(x is None for x in shown[r])}  # +1: the heading row
    pdf.set_font(FONT, "", size)
    t = _LabelledTable(pdf, full, width=sum(w), col_widths=w, align="LEFT", text_align=align,
                       line_height=pdf.font_size * 1.3, borders_layout="SINGLE_TOP_LINE", cell_fill_mode="ROWS",
                       cell_fill_color=FILL, headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL),
                       padding=(0.8, PAD), repeat_headings=1, v_align="TOP")
    head = t.row()
    for j in cols:
        head.cell(table.header[j], align="RIGHT" if table.is_right(j) else "LEFT")
    for r, row in enumerate(table.rows):
        out = t.row()
        fill = BASE_FILL if row.kind == "baseline" else None
        col = 0
        for k, c in enumerate(row.cells):
            span_cols = [j for j in range(col, col + c.span) if j in cols]
            col += c.span
            if not span_cols:
                continue
            lines = list(c.lines)
            if k < table.n_axes and shown[r][k] is None:
                lines = [""]
            if c.span > 1:
                color = (150, 25, 25) if row.kind == "failed" else GREY
                out.cell("\n".join(lines), colspan=len(span_cols), align="LEFT",
                         style=FontFace(emphasis="ITALICS", color=color, fill_color=fill))
            elif row.kind == "reference":  # chance / a task baseline: not a run, so not a score to rank
                out.cell("\n".join(lines), style=FontFace(emphasis="ITALICS", color=GREY, fill_color=fill))
            else:
                out.cell("\n".join(lines), style=FontFace(emphasis="BOLD" if c.bold else None, fill_color=fill))
    t.render()
    pdf.ln(1.5)


def render_table(pdf: _PDF, block: TableBlock) -> None:
    table = block.table
    orientation, size, groups = plan(pdf, table)
    for g, cols in enumerate(groups):
        _start(pdf, orientation, 55)
        part = f" (part {g + 1} of {len(groups)})" if len(groups) > 1 else ""
        pdf.start_section(f"Table {block.number}: {table.title}{part}", level=1)
        _text(pdf, f"Table {block.number}. {table.title}{part}", 10, "B", gap=0.5)
        caption = table.caption if g == 0 else "Continued: the same rows, the next score columns."
        _text(pdf, caption, 7.5, color=(40, 40, 40), gap=1.5)
        _table_part(pdf, table, cols, size)
        for note in table.footnotes if g == len(groups) - 1 else []:
            _text(pdf, note, 7, color=GREY, gap=0.3)
        pdf.ln(3)


def _figure_size(pdf: _PDF, block: FigureBlock) -> tuple[float, float]:
    """Width and height (mm) of a figure on a portrait page: at most 175 mm wide, never taller than a page."""
    with Image.open(block.path) as im:
        ratio = im.height / im.width
    w = 175.0
    room = 297.0 - pdf.t_margin - pdf.b_margin - 20
    if w * ratio > room:
        w = room / ratio
    return w, w * ratio


SHRINK = 0.7  # a figure shrinks down to this share of its size to fill the rest of a page, rather than leave it blank


def render_figure(pdf: _PDF, block: FigureBlock) -> None:
    w, h = _figure_size(pdf, block)
    caption = f"Figure {block.number}. {block.caption}"
    pdf.set_font(FONT, "", 8)
    below = 1 + 4 + 8 * 0.45 * len(pdf.multi_cell(0, 8 * 0.45, caption, dry_run=True, output="LINES"))
    room = pdf.h - pdf.b_margin - pdf.get_y() - below
    if _orientation(pdf) == "P" and h > room >= SHRINK * h:
        w, h = w * room / h, room
    _start(pdf, "P", h + below)  # figures are sized for portrait pages, their captions on the same page
    pdf.start_section(f"Figure {block.number}: {_short(block.caption)}", level=1)
    pdf.image(str(block.path), w=w, x=pdf.l_margin + (pdf.epw - w) / 2)
    pdf.ln(1)
    _text(pdf, caption, 8, gap=4)


def _short(caption: str, words: int = 8) -> str:
    """A bookmark's text: the caption's first sentence, cut to a few words."""
    first = caption.split(". ")[0].rstrip(".")
    parts = first.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


VERDICT_COLOURS = {"correct": (0, 110, 60), "wrong": (170, 25, 25)}
EXAMPLE_WIDTHS = (20, 24, 52, 32, 32, 20)  # mm: image, task, question, prediction, references, verdict


def render_examples(pdf: _PDF, block: ExamplesBlock) -> None:
    """One example per row: thumbnail, task and type, question, prediction, references, verdict."""
    ex = block.examples
    _start(pdf, "P", 80)
    pdf.start_section(ex.title, level=1)
    _text(pdf, ex.title, 10, "B", gap=0.5)
    _text(pdf, ex.caption, 7.5, color=(40, 40, 40), gap=1.5)
    pdf.set_font(FONT, "", 8)
    with pdf.table(width=sum(EXAMPLE_WIDTHS), col_widths=EXAMPLE_WIDTHS, align="LEFT", v_align="TOP", text_align="LEFT",
                   line_height=pdf.font_size * 1.3, borders_layout="SINGLE_TOP_LINE", cell_fill_mode="ROWS",
                   cell_fill_color=FILL, headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL),
                   padding=(0.8, PAD), repeat_headings=1) as t:
        head = t.row()
        for h in ("Image", "Task", "Question", "Prediction", "Reference", "Verdict"):
            head.cell(h)
        for e in ex.examples:
            row = t.row()
            if e.image is not None:
                row.cell(img=str(e.image), img_fill_width=True)
            else:
                row.cell("(image not on this machine)", style=FontFace(color=GREY, emphasis="ITALICS"))
            row.cell(e.task + (f"\n{e.qtype}" if e.qtype else ""))
            row.cell(e.question)
            if e.prediction.strip():
                row.cell(e.prediction)
            else:
                row.cell("(empty)", style=FontFace(color=GREY, emphasis="ITALICS"))
            row.cell(" | ".join(dict.fromkeys(e.references)) or "—")
            row.cell(e.verdict, style=FontFace(emphasis="BOLD", color=VERDICT_COLOURS.get(e.verdict, GREY)))
    pdf.ln(4)


def _key_values(pdf: _PDF, block: KeyValues) -> None:
    pdf.set_font(FONT, "B", 9)
    key_w = min(80.0, max([38.0] + [pdf.get_string_width(k) + 3 for k, _ in block.rows]))  # keys never wrap
    pdf.set_font(FONT, "", 9)
    with pdf.table(col_widths=(key_w, pdf.epw - key_w), width=pdf.epw, first_row_as_headings=False,
                   borders_layout="NONE", text_align=("LEFT", "LEFT"), line_height=pdf.font_size * 1.3,
                   padding=(0.6, 1.0), v_align="TOP") as t:
        for k, v in block.rows:
            row = t.row()
            row.cell(k, style=FontFace(emphasis="BOLD"))
            row.cell(v)
    pdf.ln(2)


def render(doc: Document, path: Path) -> Path:
    pdf = _PDF(doc.footer)
    pdf.set_title(f"{doc.title}: {doc.subtitle}")
    pdf.set_creator("ablate")
    pdf.add_page(orientation="P")
    _text(pdf, doc.subtitle, 11, color=GREY, gap=0.5)
    _text(pdf, doc.title, 17, "B", gap=3)
    # the outline is a tree: the cover's own sections (findings, how to read) sit under a first top-level entry
    pdf.start_section(doc.cover_title, level=0)
    blocks = doc.blocks
    for i, b in enumerate(blocks):
        if isinstance(b, Heading):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            need = 70 if b.level == 1 else 25
            if isinstance(nxt, TableBlock):
                orientation = plan(pdf, nxt.table)[0]
                _start(pdf, orientation, need)
            elif isinstance(nxt, FigureBlock):  # the heading, and its figure at its smallest (`render_figure`)
                _start(pdf, "P", 15 + SHRINK * _figure_size(pdf, nxt)[1] + 20)
            elif isinstance(nxt, ExamplesBlock):  # laid out for portrait pages
                _start(pdf, "P", need + 60)
            else:
                _start(pdf, _orientation(pdf), need)
            pdf.start_section(b.text, level=0 if b.level == 1 else 1)
            pdf.ln(2 if b.level == 1 else 1)
            _text(pdf, b.text, 14 if b.level == 1 else 11, "B", gap=1.5)
        elif isinstance(b, Para):
            _text(pdf, b.text, 8 if b.small else 9, gap=2)
        elif isinstance(b, KeyValues):
            _key_values(pdf, b)
        elif isinstance(b, Bullets):
            pdf.set_font(FONT, "", 8.5)
            for item in b.items:
                pdf.cell(4, pdf.font_size * 1.35, "•")
                pdf.multi_cell(pdf.epw - 4, pdf.font_size * 1.35, item, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(2)
        elif isinstance(b, TableBlock):
            render_table(pdf, b)
        elif isinstance(b, FigureBlock):
            render_figure(pdf, b)
        elif isinstance(b, ExamplesBlock):
            render_examples(pdf, b)
    pdf.output(str(path))
    return path
