"""The HTML page: one self-contained file whose every formula a real browser typesets.

Headless Chromium loads the page with a probe script that the test adds to a copy (the page itself
has none): it reports how many formulas there are, which of them have no size on the page, and
whether the browser produced any MathML error element; a screenshot shows that the page is not
blank.  CI installs Chromium (Debian's package) and sets LSTMGEN_REQUIRE_CHROMIUM=1.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib

import pytest

from lstmgen import cells, render

PROBE = """<script>
window.addEventListener("load", () => {
  const formulas = [...document.querySelectorAll("math")];
  const empty = formulas.filter(m => { const r = m.getBoundingClientRect(); return r.width < 1 || r.height < 1; });
  const report = document.createElement("pre");
  report.id = "probe";
  report.textContent = JSON.stringify({formulas: formulas.length, empty: empty.length,
                                       errors: document.querySelectorAll("merror").length});
  document.body.appendChild(report);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("LSTMGEN_REQUIRE_CHROMIUM") == "1":
        pytest.fail("Chromium is not installed but LSTMGEN_REQUIRE_CHROMIUM=1")
    pytest.skip("Chromium is not installed (set LSTMGEN_REQUIRE_CHROMIUM=1 to make this a failure)")


def _run(exe, *args):
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, errors="replace", timeout=120, check=False)


def test_the_page_is_self_contained():
    page = render.render_document("lstm", "html")
    assert not re.search(r"<(script|link|img|iframe)\b", page)           # nothing to fetch, nothing to run
    assert not re.search(r"(src|href)\s*=", page)
    assert page.count("<math") == render.render_document("lstm", "md").count("$") // 2 - _doubles("lstm")


def _doubles(cell):
    """$$ blocks count twice in the Markdown's `$` (one formula, four dollars)."""
    return render.render_document(cell, "md").count("$$") // 2


@pytest.mark.parametrize("cell", cells.builtin_names())
def test_every_formula_renders_in_chromium(tmp_path, cell):
    exe = _chromium()
    page = render.render_document(cell, "html")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    dom = _run(exe, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    report = found.group(1).replace("&quot;", '"')
    formulas, empty, errors = (int(v) for v in re.findall(r"\d+", report))
    assert formulas == page.count("<math") > 20
    assert empty == 0 and errors == 0, report


def test_the_page_is_not_blank(tmp_path):
    exe = _chromium()
    page = tmp_path / "lstm.html"
    page.write_text(render.render_document("lstm", "html"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    _run(exe, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri())
    assert shot.exists(), "no screenshot"
    assert _ink(shot.read_bytes()) > 0.01  # share of pixels that are not white


def _ink(png: bytes) -> float:
    """Share of non-white pixels of an 8-bit RGB(A) PNG, decoded with zlib alone."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, width = 8, b"", 0
    height = channels = 0
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
            channels = {2: 3, 6: 4}[data[9]]
        elif kind == b"IDAT":
            chunks += data
        pos += 12 + length
    raw, stride = zlib.decompress(chunks), width * channels
    previous, ink = bytearray(stride), 0
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):  # undo the PNG row filter
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        ink += sum(1 for i in range(0, stride, channels) if min(line[i:i + 3]) < 200)
        previous = line
    return ink / (width * height)
