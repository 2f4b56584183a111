"""A preliminary report (rendered from marts refreshed before its period ended, as ``funnelhouse report
--send`` may send) says so in its subject, HTML and plain text, in both languages; a complete one does
not. The ledger side (the complete report still goes out) is in test_orchestration.py."""

from __future__ import annotations

import pytest

from ingestion.reports import content, i18n, render
from ingestion.reports.periods import Period
from tests.reports.conftest import REPORT_DAY


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_preliminary_report_says_so_and_a_complete_one_does_not(reader, language):
    period = Period.daily(REPORT_DAY)
    words = i18n.texts(language)
    preliminary = render.render(
        content.gather(reader, "all", period, preliminary=True), language, with_pdf=False
    )
    complete = render.render(content.gather(reader, "all", period), language, with_pdf=False)

    assert preliminary.subject == f"{complete.subject} · {words['preliminary']}"
    assert words["preliminary_note"] in preliminary.html and "data-preliminary" in preliminary.html
    assert words["preliminary_note"] in preliminary.text
    assert words["preliminary_note"] not in complete.html + complete.text
    assert "data-preliminary" not in complete.html
