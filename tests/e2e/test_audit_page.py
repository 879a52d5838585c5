"""The audit's HTML page as a person sees it: rendered by headless Chromium at a laptop's width
(1366 x 768), read back through the browser's own layout (selenium and Debian's chromedriver), and
saved as a screenshot (target/audit-page.png) for a person to look at. The page is a local file:
nothing is fetched."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from test_rotation_function import make_user, unique

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or DRIVER is None) and os.environ.get("CI") != "true",
    reason="Debian's chromium and chromium-driver are not installed (scripts/tools installs them in CI)",
)

# Least to most serious, as keyturn ranks them (keyturn_core::audit::Finding::ALL).
SEVERITY = ["exempt", "ok", "never-used", "due", "stale-previous", "unmanaged", "overdue", "current-key-missing"]

# Each line of text a cell lays out: one per distinct top of its text's boxes.
LINES_OF = """
const lines = (cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
};
const table = [...document.querySelectorAll('table')].pop();
return [...table.querySelectorAll('tbody tr')].map(tr => ({
  finding: tr.className,
  cells: [...tr.children].map(td => td.textContent),
  lines: [...tr.children].map(td => td.classList.contains('nowrap') || td.classList.contains('findings') ? lines(td) : 1),
}));
"""


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,768"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def test_the_audit_page_puts_what_needs_attention_first_and_lays_out_at_a_laptop_s_width(moto, keyturn, secrets_seen, tmp_path):
    # Forty-two managed users whose keys are fine, and two users with a key no secret holds.
    for n in range(42):
        user = unique(f"fine{n:02d}")
        moto.client("iam").create_user(UserName=user)
        keyturn("enroll", user)
        secrets_seen.add(json.loads(moto.client("secretsmanager").get_secret_value(SecretId=f"keyturn/{user}")["SecretString"])["SecretAccessKey"])
    strays = {}
    for n in range(2):
        user = unique(f"zz-stray{n}")  # sorts after every fine user by name
        strays[user] = make_user(moto, user, secrets_seen)["AccessKeyId"]
    page = tmp_path / "audit.html"
    keyturn("audit", "--html", str(page), check=False)

    driver = browser()
    try:
        driver.get(page.as_uri())
        rows = driver.execute_script(LINES_OF)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        # The whole page in one picture, at the same width.
        driver.set_window_size(1366, min(driver.execute_script("return document.documentElement.scrollHeight") + 140, 6000))
        driver.save_screenshot(os.environ.get("KEYTURN_SCREENSHOT", str(tmp_path / "audit-page.png")))
    finally:
        driver.quit()

    ranks = [SEVERITY.index(r["finding"]) for r in rows]
    assert ranks == sorted(ranks, reverse=True), "rows are ordered most serious first"
    by_user = {r["cells"][1]: r for r in rows}
    for user, key_id in strays.items():
        row = by_user[user]
        assert row["finding"] == "unmanaged" and row["cells"][3] == key_id, row
    first_fine = next(i for i, r in enumerate(rows) if r["finding"] in ("ok", "never-used"))
    assert all(by_user[u] in rows[:first_fine] for u in strays), "the unmanaged keys come before the fine ones"
    # Key ids, last-used dates, labels and findings stay on one line each ("never-used" unbroken).
    wrapped = [(r["cells"][1], r["cells"]) for r in rows if any(n != 1 for n in r["lines"])]
    assert not wrapped, wrapped[:3]
    assert overflow <= 0, f"the page is {overflow}px wider than a 1366px window"
