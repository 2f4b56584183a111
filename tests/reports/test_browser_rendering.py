"""The mailed HTML, opened in a real headless Chromium at 600 px (desktop mail) and 375 px (phone):
no broken image, nothing wider than the window. Screenshots go to tests/artifacts/reports/.

The HTML is taken from the MIME message as received by the SMTP sink and its ``cid:`` images are
resolved from the message's own parts, as a mail client does: a missing part is a broken image here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ingestion.reports import content, mail, render
from ingestion.reports.recipients import Recipient
from tests.reports.conftest import ARTIFACTS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep Chromium quiet on a machine without network (otherwise it floods refused connections).
QUIET_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
LAYOUT_CHECK = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
                                                 width: i.getBoundingClientRect().width}));
  const wide = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                 .slice(0, 5).map(e => e.tagName + ':' + (e.textContent || '').trim().slice(0, 40));
  const result = {viewport: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, images, wide};
  parent.postMessage(JSON.stringify(result), '*');
});
</script>"""
# Headless Chromium will not make a window narrower than 500 px, so the mail is shown in an iframe of
# the wanted width (what a phone's mail app does too); the frame reports its check to this page.
HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="report.html" style="border:0;width:{width}px;height:{height}px"></iframe>
<script>window.addEventListener('message', event => {{
  const out = document.createElement('pre'); out.id = 'layout-check'; out.textContent = event.data;
  document.body.appendChild(out); }});</script>
</body></html>"""


def _chromium(*arguments: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [CHROMIUM, *QUIET_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _html_as_a_mail_client_shows_it(message, directory: Path) -> str:
    related = next(message.iter_parts())
    html = related.get_body(("html",)).get_content()
    for part in related.iter_parts():
        if part.get_content_maintype() == "image":
            (directory / part.get_filename()).write_bytes(part.get_content())
            html = html.replace(f"cid:{part['Content-ID'].strip('<>')}", part.get_filename())
    return html


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed: run devstack/system-packages.sh as root"
)
@pytest.mark.parametrize("width", [600, 375])
def test_report_renders_in_chromium_without_broken_images_or_overflow(reader, daily, width, tmp_path):
    report = render.render(content.gather(reader, "all", daily), "zh", with_pdf=False)
    message = mail.build_message(
        report, Recipient("admin@example.com", "管理员", "all"), "reports@funnelhouse.test"
    )
    import email
    import email.policy

    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    html = _html_as_a_mail_client_shows_it(parsed, tmp_path)
    (tmp_path / "report.html").write_text(html.replace("</body>", LAYOUT_CHECK + "</body>"), encoding="utf-8")
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.format(width=width, height=900), encoding="utf-8")

    dumped = _chromium("--window-size=800,900", "--virtual-time-budget=10000", "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dumped.stdout, re.S)
    assert found, f"Chromium produced no layout check:\n{dumped.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["viewport"] == width
    assert len(check["images"]) == 3 and all(image["ok"] for image in check["images"]), check["images"]
    assert all(image["width"] <= width for image in check["images"])
    assert check["scrollWidth"] <= width and not check["wide"], check

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"report-{width}px.png"
    (tmp_path / "report.html").write_text(html, encoding="utf-8")
    harness.write_text(HARNESS.format(width=width, height=3400), encoding="utf-8")
    shot = _chromium(
        f"--window-size={width},3400",
        "--virtual-time-budget=5000",
        f"--screenshot={screenshot}",
        harness.as_uri(),
    )
    assert screenshot.exists() and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
