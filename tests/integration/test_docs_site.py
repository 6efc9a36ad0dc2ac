"""The docs site: ``mkdocs build --strict`` passes (broken links and missing references fail it),
nothing loads from the network, the API reference holds every public symbol with its docstring,
and pages opened in headless Chromium have no broken image or internal link.

Uses the same Chromium set-up as the report test (``make browser`` installs it).
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from test_report_browser import chromium_driver

import pgrl

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["index.html", "algorithms/ppo.html", "api.html", "environments.html", "reproducing.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} s")
    return out


def test_nothing_loads_from_the_network(site):
    external = re.compile(r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"(?:https?:)?//|"
                          r"<link\b[^>]*\bhref=\"(?:https?:)?//", re.I)
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 20
    for page in pages:
        match = external.search(page.read_text())
        assert match is None, f"{page.relative_to(site)} loads {match.group(0)!r} from the network"
    for sheet in site.rglob("*.css"):
        assert not re.search(r"@import\s+url\(\s*[\"']?(?:https?:)?//", sheet.read_text()), sheet.name
        assert "fonts.googleapis" not in sheet.read_text(), sheet.name


def visible_text(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


def test_api_reference_has_every_public_symbol_with_its_docstring(site):
    import griffe

    package = griffe.load("pgrl", search_paths=[str(ROOT / "src")])
    page = (site / "api.html").read_text()
    text = visible_text(page)
    for name in pgrl.__all__:
        assert f'id="pgrl.{name}"' in page, f"the API reference has no entry for pgrl.{name}"
        docstring = package[name].docstring
        assert docstring is not None and docstring.value.strip(), f"pgrl.{name} has no docstring"
        first = " ".join(docstring.value.strip().split("\n\n")[0].replace("``", "").replace("`", "").split())
        assert first[:60] in text, f"pgrl.{name}'s docstring ({first[:60]!r}) is not on the API page"


def local_target(url: str) -> tuple[Path, str]:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)), unquote(parsed.fragment)


def test_pages_open_in_chromium_without_broken_images_or_links(site, tmp_path):
    driver = chromium_driver(tmp_path / "profile")
    try:
        for name in PAGES:
            driver.get((site / name).as_uri())
            assert driver.title, f"{name} has no title"
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src]);")
            for complete, width, src in images:
                assert complete and width > 0, f"{name}: image {src} did not load"
            links = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")
            internal = [link for link in links if link.startswith("file:")]
            assert len(internal) >= 10, f"{name}: expected the navigation's links"
            for link in internal:
                path, fragment = local_target(link)
                if path.is_dir():
                    path = path / "index.html"
                assert path.is_file(), f"{name} links to {link}, which does not exist"
                if fragment:
                    assert f'id="{fragment}"' in path.read_text(), f"{name} links to {link}: no such anchor"
        assert any(src.endswith(".png") for *_, src in images)  # the last page (reproducing) has figures
    finally:
        driver.quit()
