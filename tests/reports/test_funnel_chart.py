"""The funnel chart's bars count customers only: a count of conversations among them (2,029 quality
conversations against 56 new contacts in the demo's week) drew a bar that filled the chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ingestion.reports import metrics, render, trust
from ingestion.reports.content import ReportContent
from ingestion.reports.periods import Period
from tests.reports.report_html import by_metric

# The demo's week (issue 7): customers at each stage, and the week's quality conversations.
DEMO_WEEK = {
    "new_contacts": 56,
    "retained": 7,
    "accounts_opened": 14,
    "first_deposits": 8,
    "quality_conversations": 2029,
}


def report_content(footer: trust.TrustFooter | None = None, **counts) -> ReportContent:
    """A weekly whole-company report's content without the marts: zeros except ``counts``."""
    period = Period.weekly(date(2026, 11, 23))
    days = [
        period.trend_start + timedelta(days=offset)
        for offset in range((period.end - period.trend_start).days + 1)
    ]
    zeros = metrics.period_values([])
    headline = metrics.period_values([{**{name: 0 for name in metrics.SUMMED}, **counts}])
    return ReportContent(
        scope="all",
        period=period,
        headline=headline,
        comparisons={name: zeros for name in period.comparisons()},
        trend=[(day, zeros) for day in days],
        leaderboard=[],
        stalled=[],
        footer=footer or trust.TrustFooter(None, None, None),
        generated_at=datetime(2026, 12, 1, 6, 45, tzinfo=UTC),
    )


def test_every_funnel_stage_counts_customers():
    assert metrics.FUNNEL_STAGES, "the report draws a funnel"
    assert {stage: metrics.COUNTED.get(stage) for stage in metrics.FUNNEL_STAGES} == {
        stage: "customers" for stage in metrics.FUNNEL_STAGES
    }
    assert "quality_conversations" not in metrics.FUNNEL_STAGES
    assert "quality_conversations" in {metric.key for metric in metrics.HEADLINE}, "still a headline KPI"


def test_the_demo_weeks_funnel_shows_customers_and_the_headline_keeps_conversations():
    rendered = render.render(report_content(**DEMO_WEEK), "en", with_pdf=False)
    shown = by_metric(rendered.html)
    funnel = {
        key.removeprefix("funnel."): number.value
        for key, number in shown.items()
        if key.startswith("funnel.")
    }
    assert funnel == {stage: str(DEMO_WEEK[stage]) for stage in metrics.FUNNEL_STAGES}
    assert shown["headline.quality_conversations"].text == "2,029"
    assert rendered.charts["funnel"].startswith(b"\x89PNG")
    # No check that the stages narrow: each counts customers by the day they reached it, not one
    # cohort through its journey, and in the demo's week more accounts were opened (14) than
    # contacts retained (7).
