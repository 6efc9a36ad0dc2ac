"""Self-contained HTML reports: one file, PNGs embedded as data URIs, inline CSS, no scripts.

The writer is shared by ``pgrl compare``/``pgrl report`` and the studies::

    from pgrl.report_html import Section, write_report_html

    write_report_html("out/report.html", "PPO on CartPole-v1", [
        Section("Results", text="Final greedy return.", tables=[(["algo", "return"], [["ppo", 500.0]])]),
        Section("Curves", images=[Path("out/return.png")]),
    ])

The page opens offline: nothing is fetched, nothing runs.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgrl.errors import PGRLError

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.text { white-space: pre-wrap; line-height: 1.45; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: 0.85em; color: #555; padding-top: 0.3em; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; border: 1px solid #eee; }
"""


@dataclass
class Section:
    """One part of a report: a heading, optional text, images (PNG paths) and tables.

    A table is ``(columns, rows)``; a row is a list of cells (numbers are formatted, None and
    NaN show as blank). ``text`` is shown as preformatted plain text (escaped, newlines kept).
    """

    title: str
    text: str = ""
    images: list[Path] = field(default_factory=list)
    tables: list[tuple[list[str], list[list]]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # optional, one per table


def format_cell(value: Any) -> str:
    """A table cell as text: floats with 2 decimals (thousands with separators), None/NaN as blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == 0 or math.isinf(value):
            return f"{value:g}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
    return str(value)


def image_data_uri(path: str | Path) -> str:
    """A PNG/JPEG/SVG/GIF file as a data: URI (raises PGRLError when the file is missing)."""
    path = Path(path)
    if not path.is_file():
        raise PGRLError(f"report image {path} does not exist; render the figure before writing the report")
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
            ".gif": "image/gif"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def table_html(columns: list[str], rows: list[list], caption: str = "") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{esc(format_cell(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table></div>")


def section_html(section: Section) -> str:
    esc = html.escape
    parts = [f"<section><h2>{esc(section.title)}</h2>"]
    if section.text:
        parts.append(f'<p class="text">{esc(section.text)}</p>')
    for i, (columns, rows) in enumerate(section.tables):
        caption = section.captions[i] if i < len(section.captions) else ""
        parts.append(table_html(list(columns), [list(r) for r in rows], caption))
    for image in section.images:
        parts.append(f'<img src="{image_data_uri(image)}" alt="{esc(Path(image).stem)}">')
    parts.append("</section>")
    return "\n".join(parts)


def write_report_html(path: str | Path, title: str, sections: list[Section]) -> Path:
    """Write a self-contained report.html (images embedded, no external resources); returns its path."""
    path = Path(path)
    body = "\n".join(section_html(s) for s in sections)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
