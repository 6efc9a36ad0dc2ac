"""pgrl.report_html: the self-contained page writer shared by reports and studies."""

import base64
import math

import pytest

from pgrl.errors import PGRLError
from pgrl.report_html import Section, format_cell, write_report_html

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_sections_tables_and_embedded_images(tmp_path):
    image = tmp_path / "curve.png"
    image.write_bytes(PNG)
    page = write_report_html(
        tmp_path / "out" / "report.html",
        "A <study>",
        [
            Section("Intro", text="line 1\nline <2>"),
            Section("Data", tables=[(["name", "value"], [["a&b", 1.5], ["c", None]])], images=[image]),
        ],
    )
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>A &lt;study&gt;</title>" in html
    assert "line 1\nline &lt;2&gt;" in html
    assert "<td>a&amp;b</td><td>1.50</td>" in html and "<td>c</td><td></td>" in html
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in html
    assert "http" not in html and "<script" not in html and "<link" not in html


def test_section_defaults_are_independent():
    a, b = Section("a"), Section("b")
    a.images.append("x.png")
    assert b.images == [] and b.tables == [] and b.text == ""


def test_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(PGRLError, match="missing.png does not exist"):
        write_report_html(tmp_path / "r.html", "t", [Section("s", images=[tmp_path / "missing.png"])])


def test_format_cell():
    assert [format_cell(v) for v in (None, math.nan, 0.0, 3.14159, 123456.0, 0.000123, 7, "x")] == [
        "", "", "0", "3.14", "123,456", "0.000123", "7", "x"]
