"""A real `pgrl compare` report opened in headless Chromium: every image loads, one table row per group.

Needs Debian's chromium and chromium-driver (`make browser` installs them; `make test` does it first).
Selenium is pointed at /usr/bin/chromedriver and /usr/bin/chromium and runs offline, so Selenium
Manager never downloads a driver or a browser.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,2400",
]


def chromium_driver(profile: Path):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} is missing: run `make browser` (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def test_compare_report_opens_in_chromium(tmp_path):
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "pgrl.cli", "compare", "--algos", "a2c,ppo", "--env", "CartPole-v1",
           "--seeds", "2", "--total-timesteps", "3000", "--no-batch", "--eval-episodes", "5", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    page = out / "report.html"
    html = page.read_text()
    assert not re.search(r'(?:src|href)="(?!data:)', html), "the report must not load external resources"
    assert "<script" not in html

    driver = chromium_driver(tmp_path / "profile")
    try:
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);"
        )
        assert len(images) >= 2  # return curves and diagnostics
        for complete, width, alt in images:
            assert complete and width > 0, f"image {alt} did not load"
        rows = driver.execute_script(
            """const t = Array.from(document.querySelectorAll('table'))
                 .find(t => t.tHead && t.tHead.innerText.includes('final return (IQM)'));
               return t ? Array.from(t.tBodies[0].rows).map(r => r.cells[0].innerText) : null;"""
        )
        assert sorted(rows) == ["a2c", "ppo"]
        driver.save_screenshot(str(out / "screenshot.png"))
    finally:
        driver.quit()
    assert (out / "screenshot.png").stat().st_size > 10_000
