"""The report's charts as PNG bytes (matplotlib, Agg: no display, safe in workers and schedulers).

Chinese labels need a CJK font; without one matplotlib draws empty boxes and says nothing useful.
So the font is looked up once, a missing one is a loud warning naming the package to install
(``fonts-noto-cjk``, see devstack/system-packages.sh), and the charts fall back to English labels
rather than boxes.
"""

from __future__ import annotations

import functools
import io
import logging
import warnings

import matplotlib

matplotlib.use("Agg")

from matplotlib import dates, font_manager, ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ingestion.reports import i18n  # noqa: E402
from ingestion.reports.content import ReportContent  # noqa: E402

log = logging.getLogger(__name__)

# Preferred first; any one of them covers simplified Chinese.
CJK_FONT_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
WIDTH_INCHES, DPI = 6.0, 150  # 900 px wide: sharp when shown at 560 px on a 1.5x screen, small enough to mail
COLOURS = {
    "net": "#1f6feb",
    "deposits": "#2da44e",
    "withdrawals": "#cf222e",
    "contacts": "#8250df",
    "opened": "#bf8700",
}


def _known_cjk_family() -> str | None:
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FONT_FAMILIES if family in installed), None)


def _add_fonts_missing_from_the_cache() -> None:
    """matplotlib lists the system's fonts once and caches the list (``~/.cache/matplotlib``); a font
    installed after that, e.g. by devstack/system-packages.sh on a machine that had already drawn a
    chart, is not in it. Add the font files the list lacks."""
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError) as unreadable:  # a broken file: not ours to fix
                log.debug("font %s skipped: %s", path, unreadable)


@functools.cache
def cjk_font() -> str | None:
    """The first installed CJK font family, or None (after a warning that says what to do)."""
    family = _known_cjk_family()
    if family is None:
        _add_fonts_missing_from_the_cache()
        family = _known_cjk_family()
    if family is not None:
        return family
    message = (
        "no CJK font found for the report charts: Chinese labels fall back to English. "
        "Install one, e.g. `apt-get install fonts-noto-cjk` (devstack/system-packages.sh does it)."
    )
    warnings.warn(message, stacklevel=2)
    log.warning(message)
    return None


def chart_language(language: str) -> str:
    return language if language != "zh" or cjk_font() else "en"


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, layout="constrained")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _style(axes) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)


def funnel_chart(content: ReportContent, language: str) -> bytes:
    language = chart_language(language)
    words = i18n.texts(language)
    stages = content.funnel
    figure = _figure(2.6)
    axes = figure.add_subplot()
    labels = [words[name] for name, _ in stages][::-1]
    values = [int(value) for _, value in stages][::-1]
    bars = axes.barh(labels, values, color=COLOURS["net"], height=0.6)
    axes.bar_label(bars, labels=[f"{value:,}" for value in values], padding=3, fontsize=8)
    axes.set_xlim(0, max(values + [1]) * 1.18)
    axes.xaxis.set_visible(False)
    _style(axes)
    return _png(figure)


def _trend_axes(content: ReportContent, height: float = 2.4):
    figure = _figure(height)
    axes = figure.add_subplot()
    days = [day for day, _ in content.trend]
    return figure, axes, days


def money_trend_figure(content: ReportContent, language: str) -> Figure:
    words = i18n.texts(chart_language(language))
    figure, axes, days = _trend_axes(content)
    series = {
        name: [float(values[name]) for _, values in content.trend]
        for name in ("net_deposit", "deposits", "withdrawals")
    }
    axes.bar(days, series["net_deposit"], color=COLOURS["net"], alpha=0.55, label=words["net_deposit"])
    axes.plot(days, series["deposits"], color=COLOURS["deposits"], linewidth=1.4, label=words["deposits"])
    axes.plot(
        days, series["withdrawals"], color=COLOURS["withdrawals"], linewidth=1.4, label=words["withdrawals"]
    )
    axes.axhline(0, color="#8c959f", linewidth=0.6)
    _finish_trend(axes, [value for values in series.values() for value in values])
    return figure


def money_trend_chart(content: ReportContent, language: str) -> bytes:
    return _png(money_trend_figure(content, language))


def activity_trend_figure(content: ReportContent, language: str) -> Figure:
    words = i18n.texts(chart_language(language))
    figure, axes, days = _trend_axes(content)
    plotted = []
    for name, colour in (("new_contacts", "contacts"), ("accounts_opened", "opened")):
        counts = [int(values[name]) for _, values in content.trend]
        plotted += counts
        axes.plot(
            days,
            counts,
            color=COLOURS[colour],
            linewidth=1.4,
            marker="o",
            markersize=2,
            label=words[name],
        )
    _finish_trend(axes, plotted)
    return figure


def activity_trend_chart(content: ReportContent, language: str) -> bytes:
    return _png(activity_trend_figure(content, language))


def _whole_number(value: float, _position=None) -> str:
    """A y tick as a whole number with thousands separators; never "-0" (round(-0.3) is int 0)."""
    return f"{round(value):,}"


def _finish_trend(axes, values: list[float]) -> None:
    axes.xaxis.set_major_formatter(dates.DateFormatter("%m-%d"))
    # Counts and amounts: whole-number ticks only, so a small range never shows one label twice.
    axes.yaxis.set_major_locator(ticker.MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))
    axes.yaxis.set_major_formatter(ticker.FuncFormatter(_whole_number))
    if not any(values):
        # Nothing to scale to: matplotlib would centre on 0 with ±0.05 ticks (shown as "0, 0, -0, -0").
        axes.set_ylim(0, 1)
    axes.legend(fontsize=7, frameon=False, loc="upper left", ncols=3)
    _style(axes)


CHARTS = {"funnel": funnel_chart, "trend_money": money_trend_chart, "trend_activity": activity_trend_chart}


def render_all(content: ReportContent, language: str) -> dict[str, bytes]:
    """``{chart name: PNG bytes}``; the names are the images' Content-IDs and file names."""
    family = cjk_font()
    fonts = {
        "font.family": "sans-serif",
        "font.sans-serif": [family, "DejaVu Sans"] if family else ["DejaVu Sans"],
    }
    with matplotlib.rc_context(fonts):
        return {name: draw(content, language) for name, draw in CHARTS.items()}
