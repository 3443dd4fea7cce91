"""A `Table` as CSV (numbers, scores in %), Markdown (GitHub pipes) and LaTeX (booktabs)."""
from __future__ import annotations

from .tables import Table, TCell

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$",
                "–": "--", "…": r"\ldots{}", "·": r"$\cdot$"}


def to_csv(table: Table) -> str:
    return table.data.to_csv(index=False)


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def _md_cell(cell: TCell) -> str:
    if not cell.lines:
        return ""
    first = _md_escape(cell.lines[0])
    first = f"**{first}**" if cell.bold else first
    rest = [_md_escape(x) for x in cell.lines[1:]]
    return " ".join([first] + [f"({x})" if x.startswith("Δ") else x for x in rest])


def _expand(table: Table, cells: list[TCell]) -> list[TCell]:
    """Markdown and CSV have no column spans: a spanning cell goes first, empty cells after it."""
    out = []
    for c in cells:
        out.append(c)
        out += [TCell([])] * (c.span - 1)
    return out + [TCell([])] * (len(table.header) - len(out))


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}.** {table.caption}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
    lines.append("|" + "|".join("---:" if table.is_right(i) else ":---" for i in range(len(table.header))) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in _expand(table, row.cells)) + " |")
    lines += [""] + [f"{note}  " for note in table.footnotes]
    return "\n".join(lines).rstrip() + "\n"


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_cell(cell: TCell) -> str:
    if not cell.lines:
        return ""
    first = tex_escape(cell.lines[0])
    first = rf"\textbf{{{first}}}" if cell.bold else first
    rest = " ".join(tex_escape(x) for x in cell.lines[1:])
    return first + (rf" {{\scriptsize {rest}}}" if rest else "")


def to_latex(table: Table) -> str:
    """A booktabs table; wide ones are scaled to the line width (needs graphicx)."""
    spec = "".join("r" if table.is_right(j) else "l" for j in range(len(table.header)))
    wide = len(table.header) > 7
    out = [r"% requires \usepackage{booktabs}" + (r" and \usepackage{graphicx}" if wide else ""),
           r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(table.caption)}}}",
           rf"\label{{tab:{table.slug}}}", r"\small"]
    if wide:
        out.append(r"\resizebox{\linewidth}{!}{%")
    out += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
            " & ".join(tex_escape(h) for h in table.header) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = []
        for c in row.cells:
            text = _tex_cell(c)
            if c.span > 1:
                text = rf"\multicolumn{{{c.span}}}{{l}}{{\textit{{{text}}}}}"
            cells.append(text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}" + ("}" if wide else "")]
    for note in table.footnotes:
        out.append(rf"\par\smallskip{{\footnotesize {tex_escape(note)}}}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"
