"""One report as HTML (for mail and for PDF), plain text, charts and the leaderboard CSV.

The same template renders the mail (images as ``cid:`` parts) and the self-contained preview and PDF
(images as ``data:`` URIs), so what is printed is what is mailed.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import jinja2

from ingestion.reports import charts, i18n, metrics
from ingestion.reports.content import ReportContent
from ingestion.reports.recipients import ALL_DEPARTMENTS

LEADERBOARD_ROWS_IN_MAIL = 10
CONTENT_ID_DOMAIN = "report.funnelhouse"
FONT_STACK = (
    "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei','WenQuanYi Zen Hei',"
    "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["j2"], default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=False,
)
_text_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass
class RenderedReport:
    scope: str
    period_key: str
    language: str
    subject: str
    html: str  # images as cid:<chart name>
    preview_html: str  # self-contained: images as data: URIs
    text: str
    charts: dict[str, bytes]
    leaderboard_csv: bytes
    pdf: bytes = field(default=b"", repr=False)

    @property
    def slug(self) -> str:
        return f"{self.period_key}-{self.scope}-{self.language}"


def content_id(chart: str) -> str:
    """The Content-ID of a chart's MIME part, as the HTML's ``cid:`` URLs name it (RFC 2392)."""
    return f"{chart}@{CONTENT_ID_DOMAIN}"


def scope_label(scope: str, language: str) -> str:
    words = i18n.texts(language)
    return (
        words["scope_all"] if scope == ALL_DEPARTMENTS else words["scope_department"].format(department=scope)
    )


def period_label(content: ReportContent) -> str:
    period = content.period
    return period.start.isoformat() if period.start == period.end else f"{period.start} – {period.end}"


def subject(content: ReportContent, language: str) -> str:
    words = i18n.texts(language)
    preliminary = f" · {words['preliminary']}" if content.preliminary else ""
    return (
        f"[funnelhouse] {words['title_' + content.period.kind]} · {scope_label(content.scope, language)}"
        f" · {period_label(content)}{preliminary}"
    )


def preliminary_note(language: str, complete_follows: bool) -> str:
    """What a preliminary report says of itself: its data misses the period's last hours, and whether its
    complete report follows by itself (``complete_follows``: a configured recipient, whom the scheduled run
    mails it) or only if the command that sent it is run again (an address given to ``--to`` alone)."""
    words = i18n.texts(language)
    then = words["preliminary_complete_follows" if complete_follows else "preliminary_complete_on_request"]
    return words["preliminary_note"] + ("" if language == "zh" else " ") + then


def _delta_colour(delta: Decimal | None, metric: metrics.Metric) -> str:
    if not delta:
        return "#57606a"
    return "#1a7f37" if (delta > 0) == metric.higher_is_better else "#cf222e"


def _context(
    content: ReportContent, language: str, image_src: Callable[[str], str], complete_follows: bool = True
) -> dict:
    return {
        "content": content,
        "period": content.period,
        "scope": content.scope,
        "footer": content.footer,
        "language": language,
        "t": i18n.texts(language),
        "subject": subject(content, language),
        "preliminary_note": preliminary_note(language, complete_follows),
        "scope_label": scope_label(content.scope, language),
        "period_label": period_label(content),
        "generated_label": content.generated_at.strftime("%Y-%m-%d %H:%M %Z"),
        "headline_metrics": metrics.HEADLINE,
        "comparison_names": list(content.comparisons),
        "leaders": content.leaderboard[:LEADERBOARD_ROWS_IN_MAIL],
        "image_src": image_src,
        "fmt": metrics.format_value,
        "fmt_change": metrics.format_change,
        "delta_colour": _delta_colour,
        "stage_name": lambda stage: i18n.stage_name(stage, language),
        "level_name": lambda level: i18n.level_name(level, language),
        "font_stack": FONT_STACK,
        "font_missing": language == "zh" and charts.cjk_font() is None,
    }


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _as_text_cell(value: str | None) -> str:
    """A name a spreadsheet would run as a formula ("=HYPERLINK(...)", "@SUM(...)") gets a leading
    apostrophe, which shows it as the text it is (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def leaderboard_csv(content: ReportContent) -> bytes:
    """The full leaderboard; UTF-8 with a BOM so spreadsheet programs show Chinese names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        ["rank", "employee_code", "employee_name", "department", "level", "net_deposit", "overall_score"]
    )
    for row in content.leaderboard:
        writer.writerow(
            [
                row.rank,
                _as_text_cell(row.employee_code),
                _as_text_cell(row.employee_name),
                row.department,
                row.level,
                row.net_deposit,
                "" if row.overall_score is None else row.overall_score,
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def render(
    content: ReportContent, language: str, with_pdf: bool = True, complete_follows: bool = True
) -> RenderedReport:
    """``complete_follows``: if ``content`` is preliminary, whether its complete report is mailed to its
    recipients by itself (see :func:`preliminary_note`)."""
    images = charts.render_all(content, language)

    def data_uri(name: str) -> str:
        return "data:image/png;base64," + base64.b64encode(images[name]).decode("ascii")

    html_template = _templates.get_template("report.html.j2")
    preview = html_template.render(_context(content, language, data_uri, complete_follows))
    report = RenderedReport(
        scope=content.scope,
        period_key=content.period.key,
        language=language,
        subject=subject(content, language),
        html=html_template.render(
            _context(content, language, lambda name: f"cid:{content_id(name)}", complete_follows)
        ),
        preview_html=preview,
        text=_text_templates.get_template("report.txt.j2").render(
            _context(content, language, str, complete_follows)
        ),
        charts=images,
        leaderboard_csv=leaderboard_csv(content),
    )
    if with_pdf:
        from ingestion.reports.pdf import html_to_pdf

        report.pdf = html_to_pdf(preview)
    return report
