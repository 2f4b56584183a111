"""Chinese chart labels need a CJK font that matplotlib knows of, also when it was installed after
matplotlib cached its font list (devstack/system-packages.sh on a machine that had drawn charts)."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
from matplotlib import font_manager
from matplotlib.figure import Figure

from ingestion.reports import charts


@pytest.fixture
def font_list_cached_before_the_cjk_fonts_were_installed(monkeypatch):
    """matplotlib's font list as a cache from before the install: no entry of any file holding a CJK
    family (a .ttc collection has many: Noto Sans CJK SC, ... Noto Sans Mono CJK HK)."""
    charts.cjk_font.cache_clear()
    entries = font_manager.fontManager.ttflist
    installed_later = {entry.fname for entry in entries if entry.name in charts.CJK_FONT_FAMILIES}
    stale = [entry for entry in entries if entry.fname not in installed_later]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    yield
    charts.cjk_font.cache_clear()


def _system_has_a_cjk_font() -> bool:
    names = set()
    for path in font_manager.findSystemFonts():
        try:
            names.add(font_manager.get_font(path).family_name)
        except (OSError, RuntimeError, ValueError):
            continue
    return bool(names & set(charts.CJK_FONT_FAMILIES))


def test_a_cjk_font_missing_from_the_cached_font_list_is_found_and_draws_chinese(
    font_list_cached_before_the_cjk_fonts_were_installed,
):
    if not _system_has_a_cjk_font():
        pytest.skip("no CJK font installed: run devstack/system-packages.sh as root")
    family = charts.cjk_font()
    assert family in charts.CJK_FONT_FAMILIES
    assert charts.chart_language("zh") == "zh"  # Chinese labels, not the English fallback
    with (
        warnings.catch_warnings(record=True) as caught,
        matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": [family, "DejaVu Sans"]}),
    ):
        warnings.simplefilter("always")
        figure = Figure()
        figure.suptitle("净入金 存款 出金")
        figure.canvas.draw()
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]
