"""``funnelhouse report`` by hand: the day it picks by default, the periods and options it refuses, and
a one-line error instead of a traceback for every bad input (the scheduled assets:
tests/reports/test_orchestration.py)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from ingestion.reports import charts, content
from ingestion.reports.data import MartReader
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import DEPARTMENTS, RecipientError, apply_config, check_scope
from orchestration.cli import app
from orchestration.defs.warehouse import refresh_state
from tests.reports import sample_marts
from tests.reports.conftest import (
    MARTS_DATABASE,
    RAW_DATABASE,
    REPORT_DAY,
    messages_to,
    outbox_messages,
    raw_messages_to,
)
from tests.reports.report_html import by_metric

# The sample marts have activity on 45 days up to END_DATE (sample_marts.build's defaults).
FIRST_ACTIVE, LAST_ACTIVE = sample_marts.END_DATE - timedelta(days=44), sample_marts.END_DATE
SPINE_DATABASE = "report_test_marts_spine"
QUIET_DAY = date(2026, 11, 20)  # a day with data that no other test mails (so the outbox says what happened)


def invoke(*arguments: str):
    return CliRunner().invoke(app, ["report", *arguments])


def said(result) -> str:
    """The command's output as one line, however the terminal wrapped it (and the box drawn round it)."""
    return " ".join(result.output.replace("│", " ").split())


def assert_clean_failure(result, exit_code: int) -> None:
    """Refused with the given exit code and a message, not a traceback."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def mailed(outbox, period_key: str) -> list:
    return [m for m in outbox_messages(outbox) if m["X-Funnelhouse-Report"].startswith(period_key)]


@pytest.fixture(scope="module")
def spine_reader(marts):
    """The sample marts as the real mart is built: a date spine with activity-free rows for every
    employee on days without data (three after the data ends, as when it stopped arriving, and some before)."""
    client = marts[0]
    people = sample_marts.build(client, SPINE_DATABASE)
    sample_marts.add_spine_days(
        client, SPINE_DATABASE, people, LAST_ACTIVE + timedelta(days=1), LAST_ACTIVE + timedelta(days=3)
    )
    sample_marts.add_spine_days(
        client, SPINE_DATABASE, people, FIRST_ACTIVE - timedelta(days=5), FIRST_ACTIVE - timedelta(days=1)
    )
    return MartReader(client, SPINE_DATABASE)


# 1. the default day


def test_the_data_day_is_the_newest_with_activity_not_the_spine_end(spine_reader):
    assert spine_reader.activity_range() == (FIRST_ACTIVE, LAST_ACTIVE)
    assert spine_reader.latest_kpi_day() == LAST_ACTIVE
    footer = content.gather(spine_reader, "all", Period.daily(LAST_ACTIVE)).footer
    assert footer.latest_data_day == LAST_ACTIVE  # "data up to": the last day with data, not the build date


def test_without_date_the_report_is_on_the_newest_day_with_activity(
    report_environment, spine_reader, monkeypatch
):
    monkeypatch.setenv("FUNNELHOUSE_MARTS_DATABASE", SPINE_DATABASE)
    out = report_environment / "out"
    result = invoke("--to", "admin@example.com", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == [f"daily-{LAST_ACTIVE}"]
    html = (out / f"daily-{LAST_ACTIVE}" / f"daily-{LAST_ACTIVE}-all-zh" / "report.html").read_text()
    shown = by_metric(html)
    assert shown["footer.latest_data_day"].value == LAST_ACTIVE.isoformat()
    assert shown["headline.deposits"].value not in ("0", "0.00")


# 2. --scope / --language only with --to


@pytest.mark.parametrize("option", [("--scope", "BoFu"), ("--language", "en")], ids=["scope", "language"])
def test_scope_and_language_without_to_are_refused(report_environment, smtp_sink, option):
    out = report_environment / "out"
    result = invoke("--date", QUIET_DAY.isoformat(), "--send", *option, "--out", str(out))
    assert_clean_failure(result, 2)
    assert option[0] in said(result) and "only applies with --to" in said(result)
    assert not out.exists()
    assert not mailed(smtp_sink["outbox"], f"daily-{QUIET_DAY}")


# 3. one rule for scopes, whether from the command line or the recipients file


@pytest.mark.parametrize("scope", ["Sales", "bofu"])
def test_a_scope_that_is_no_department_is_refused_naming_the_valid_ones(report_environment, scope):
    out = report_environment / "out"
    result = invoke(
        "--date", QUIET_DAY.isoformat(), "--to", "nobody@example.com", "--scope", scope, "--out", str(out)
    )
    assert_clean_failure(result, 2)
    message = said(result)
    assert f"'{scope}'" in message and "--scope" in message
    assert all(department in message for department in ("all", *DEPARTMENTS))
    assert not out.exists()
    with pytest.raises(RecipientError) as rule:
        check_scope(scope)
    with pytest.raises(RecipientError) as from_file:
        apply_config([], {"recipients": [{"email": "x@example.com", "scope": scope}]})
    assert str(rule.value) in str(from_file.value) and str(rule.value) in message


# 4. bad input: a message, no traceback


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("--date", "2026-13-40"), ["--date", "'2026-13-40' is not a date", "YYYY-MM-DD"]),
        (("--date", "yesterday"), ["--date", "'yesterday' is not a date"]),
        (
            ("--date", "2026-11-20", "--to", "x@example.com", "--scope", "all", "--language", "fr"),
            ["--language", "language must be one of zh, en, not 'fr'"],
        ),
        (
            ("--date", "2026-11-20", "--to", "boss@例子..中国", "--scope", "all"),
            ["--to", "boss@例子..中国", "not a valid internationalised domain name"],
        ),
        (("--date", "2026-11-20", "--to", "boss", "--scope", "all"), ["--to", "'boss'", "local part@domain"]),
    ],
    ids=["impossible-date", "word-date", "language", "idn-without-ascii-form", "no-address"],
)
def test_bad_options_are_usage_errors(report_environment, arguments, expected):
    result = invoke(*arguments, "--out", str(report_environment / "out"))
    assert_clean_failure(result, 2)
    for words in expected:
        assert words in said(result)
    assert not (report_environment / "out").exists()


def test_to_a_non_ascii_address_needs_a_server_offering_smtputf8(
    report_environment, smtp_sink, ascii_only_sink, monkeypatch
):
    """The rule of every recipient's delivery, applied before anything is rendered: the local sink
    offers SMTPUTF8 and the report goes out; a relay without it is an error naming the address."""
    address, day, out = "renée@example.com", "2026-11-18", report_environment / "out"
    sent = invoke("--date", day, "--send", "--to", address, "--scope", "VIP")
    assert sent.exit_code == 0, sent.output
    assert len(raw_messages_to(smtp_sink["outbox"], address)) == 1

    settings, ascii_only_outbox = ascii_only_sink
    monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://{settings.host}:{settings.port}")
    monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
    refused = invoke(
        "--date", day, "--send", "--to", address, "--scope", "VIP", "--resend", "--out", str(out)
    )
    assert_clean_failure(refused, 1)
    assert address in said(refused) and "does not offer SMTPUTF8" in said(refused)
    assert not out.exists() and not raw_messages_to(ascii_only_outbox, address)


def test_a_recipients_variable_naming_no_file_is_a_clear_error(report_environment, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", "garbage")
    result = invoke("--date", QUIET_DAY.isoformat(), "--out", str(report_environment / "out"))
    assert_clean_failure(result, 1)
    assert result.stderr.strip() == "Error: FUNNELHOUSE_REPORT_RECIPIENTS=garbage: no such file"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "recipients:\n  - {email: tofu.deputy@example.com, scope: tofu}\n",
            "tofu.deputy@example.com: scope must be one of all, ToFu",
        ),
        (
            "recipients:\n  - {email: en.deputy@example.com, scope: ToFu, language: fr}\n",
            "language must be one of zh, en",
        ),
        ("recipients: [\n", "not valid YAML"),
        ("- someone@example.com\n", "expected a mapping"),
        ("recipients:\n  - {scope: all}\n", "every entry of recipients needs an email"),
    ],
    ids=["scope", "language", "yaml", "list", "no-email"],
)
def test_a_bad_recipients_file_is_a_clear_error_naming_it(report_environment, monkeypatch, text, expected):
    config = report_environment / "recipients.yaml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    result = invoke("--date", QUIET_DAY.isoformat(), "--out", str(report_environment / "out"))
    assert_clean_failure(result, 1)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: FUNNELHOUSE_REPORT_RECIPIENTS={config}: ") and expected in line


# 5. a period without any activity


@pytest.mark.parametrize(
    "arguments",
    [("--date", "2020-01-01"), ("--date", "2030-01-01"), ("--date", "2030-01-01", "--weekly")],
    ids=["before", "after", "week-after"],
)
def test_a_period_without_activity_is_refused_with_the_days_that_have_some(
    report_environment, smtp_sink, arguments
):
    out = report_environment / "out"
    result = invoke(*arguments, "--send", "--out", str(out))
    assert_clean_failure(result, 2)
    assert f"days with activity run from {FIRST_ACTIVE} to {LAST_ACTIVE}" in said(result)
    assert not out.exists()
    assert not mailed(smtp_sink["outbox"], "daily-2020-") and not mailed(smtp_sink["outbox"], "daily-2030-")
    assert not mailed(smtp_sink["outbox"], "weekly-2029-12-30")


def test_a_spine_day_after_the_data_is_refused(report_environment, spine_reader, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_MARTS_DATABASE", SPINE_DATABASE)
    day = LAST_ACTIVE + timedelta(days=2)  # the mart has rows for it, all zero
    result = invoke(
        "--date", day.isoformat(), "--to", "admin@example.com", "--out", str(report_environment / "out")
    )
    assert_clean_failure(result, 2)
    assert f"no activity in the marts on {day}" in said(result)
    # a week with some activity in it is a report (the spine's zero days are simply quiet days)
    week = invoke(
        "--date",
        day.isoformat(),
        "--weekly",
        "--to",
        "admin@example.com",
        "--out",
        str(report_environment / "out"),
    )
    assert week.exit_code == 0, week.output


# 6. charts of an all-zero series


def y_labels(figure) -> list[str]:
    figure.canvas.draw()
    axes = figure.axes[0]
    low, high = axes.get_ylim()
    return [
        label.get_text()
        for label, value in zip(axes.get_yticklabels(), axes.get_yticks(), strict=True)
        if low <= value <= high
    ]


def test_an_all_zero_chart_has_a_zero_to_one_axis(reader):
    quiet = content.gather(reader, "all", Period.daily(date(2020, 1, 1)))
    assert not any(value for _, values in quiet.trend for value in values.values())
    for draw in (charts.money_trend_figure, charts.activity_trend_figure):
        figure = draw(quiet, "en")
        assert figure.axes[0].get_ylim() == (0, 1)
        assert y_labels(figure) == ["0", "1"]


def test_chart_ticks_are_distinct_whole_numbers(reader):
    busy = content.gather(reader, "VIP", Period.daily(REPORT_DAY))
    for draw in (charts.money_trend_figure, charts.activity_trend_figure):
        labels = y_labels(draw(busy, "en"))
        assert len(labels) >= 3 and len(set(labels)) == len(labels)
        assert "-0" not in labels and all("." not in label for label in labels)


@pytest.mark.parametrize("lagging", ["every model", "the KPI mart"])
def test_a_day_the_marts_were_refreshed_during_is_reported_with_a_warning(report_environment, marts, lagging):
    """By hand the report is written (someone asked for it), saying its numbers may lack the day's end.
    The KPI mart has a mark of its own: in Dagster a job of its own builds it, so models refreshed after
    the day ended say nothing of it when its last run (from the models as they were at 18:30) failed."""
    client, before_end, after_end = marts[0], datetime(2026, 11, 20, 18, 30), datetime(2026, 11, 21, 0, 30)
    if lagging == "every model":
        mark, subject = refresh_state.record_refresh, "the marts were"
    else:
        refresh_state.record_refresh(client, RAW_DATABASE, MARTS_DATABASE, after_end, kpi_mart=False)
        mark, subject = refresh_state.record_kpi_refresh, "mart_kpi_employee_daily was"
    mark(client, RAW_DATABASE, MARTS_DATABASE, before_end)
    result = invoke("--date", QUIET_DAY.isoformat(), "--to", "admin@example.com")
    assert result.exit_code == 0, result.output
    assert f"warning: {subject} last refreshed at 2026-11-20 18:30 UTC" in said(result)
    mark(client, RAW_DATABASE, MARTS_DATABASE, after_end)
    assert "warning" not in said(invoke("--date", QUIET_DAY.isoformat(), "--to", "admin@example.com"))


def test_a_send_lists_the_files_it_wrote_and_a_second_send_says_it_went_out_already_and_where(
    report_environment, smtp_sink
):
    """The run that renders a report lists every file a reader opens (HTML, PDF, CSV leaderboard). A
    second run renders and mails nothing again, so it writes no paths of its own: the ledger says when
    the report went out and to how many, and the same files, where the first run wrote them."""
    arguments = ("--date", QUIET_DAY.isoformat(), "--send", "--to", "admin@example.com")
    before = len(mailed(smtp_sink["outbox"], f"daily-{QUIET_DAY}"))
    first = invoke(*arguments)
    assert first.exit_code == 0, first.output
    slug = f"daily-{QUIET_DAY}-all-zh"
    folder = report_environment / "reports" / f"daily-{QUIET_DAY}" / slug
    files = [folder / "report.html", folder / "report.pdf", folder / "leaderboard.csv"]
    assert all(path.is_file() for path in files)
    listed = ", ".join(map(str, files))
    assert f"{slug}: {listed}" in said(first), first.output

    second = invoke(*arguments)
    assert second.exit_code == 0, second.output
    assert len(mailed(smtp_sink["outbox"], f"daily-{QUIET_DAY}")) == before + 1
    [row] = Ledger(os.environ["FUNNELHOUSE_PG_DSN"]).deliveries(Period.daily(QUIET_DAY))
    assert (
        f"{slug}: already sent (last at {row['sent_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC, to 1 "
        f"recipient(s)), not sent again (--resend does); {listed}" in said(second)
    ), second.output
    assert "sent 0, already sent 1, failed 0" in said(second)


# 7. the ledger knows a delivery by address and scope


def test_an_address_mailed_one_scopes_report_is_mailed_anothers(report_environment, smtp_sink):
    """An address mailed everyone's report by hand has not had the ToFu one: that is sent, not
    "already sent"; a second ToFu send is."""
    address = "outsider.scopes@example.com"
    arguments = ("--date", QUIET_DAY.isoformat(), "--send", "--to", address)
    assert invoke(*arguments, "--scope", "all").exit_code == 0
    tofu = invoke(*arguments, "--scope", "ToFu")
    assert tofu.exit_code == 0, tofu.output
    assert "sent 1, already sent 0, failed 0" in said(tofu), tofu.output
    for scope in ("all", "ToFu"):
        assert len(messages_to(smtp_sink["outbox"], address, f"daily-{QUIET_DAY}-{scope}-zh")) == 1
    again = invoke(*arguments, "--scope", "ToFu")
    assert "sent 0, already sent 1, failed 0" in said(again), again.output
    rows = Ledger(os.environ["FUNNELHOUSE_PG_DSN"]).deliveries(Period.daily(QUIET_DAY))
    assert sorted((row["recipient"], row["scope"], row["status"]) for row in rows) == [
        (address, "ToFu", "sent"),
        (address, "all", "sent"),
    ]


def test_a_recipient_given_another_scope_than_their_own_is_refused(report_environment, smtp_sink):
    """--scope is not silently ignored for a known recipient: they get their own scope's report."""
    out = report_environment / "out"
    before = len(mailed(smtp_sink["outbox"], f"daily-{QUIET_DAY}"))
    result = invoke(
        "--date", QUIET_DAY.isoformat(), "--send", "--to", "admin@example.com", "--scope", "ToFu",
        "--out", str(out),
    )  # fmt: skip
    assert_clean_failure(result, 2)
    assert "--scope" in said(result)
    assert "admin@example.com is a report recipient with scope all, not 'ToFu'" in said(result), result.output
    assert not out.exists()
    assert len(mailed(smtp_sink["outbox"], f"daily-{QUIET_DAY}")) == before


# 8. a stack never built, a folder that cannot be written


@pytest.mark.parametrize("day", [(), ("--date", QUIET_DAY.isoformat())], ids=["newest-day", "given-day"])
def test_a_stack_whose_marts_were_never_built_is_told_to_build_them(report_environment, monkeypatch, day):
    monkeypatch.delenv("FUNNELHOUSE_MARTS_DATABASE")
    monkeypatch.setenv("FUNNELHOUSE_SCHEMA_PREFIX", "zz_")  # a database nothing was built into
    out = report_environment / "out"
    result = invoke(*day, "--out", str(out))
    assert_clean_failure(result, 1)
    assert "no marts in zz_marts: run `funnelhouse build` first" in said(result), result.output
    assert not out.exists()


def test_an_out_folder_that_cannot_be_written_is_one_line(report_environment):
    blocker = report_environment / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "reports"
    result = invoke("--date", QUIET_DAY.isoformat(), "--out", str(out))
    assert_clean_failure(result, 1)
    assert f"cannot write report files to {out}: Not a directory" in said(result), result.output


# What a preliminary report (zh, the default) promises a configured recipient: the scheduled run mails it.
COMPLETE_FOLLOWS = "本期结束后将发送完整报告"


def mail_text(message) -> str:
    """The plain-text and HTML bodies of a report mail, one after the other."""
    return "\n".join(
        part.get_content()
        for part in message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    )


def test_a_preliminary_report_to_an_address_nobody_configured_says_how_its_complete_one_is_sent(
    report_environment, smtp_sink, marts
):
    """`--send --to` an address that is no recipient, for a day the marts were refreshed during: the
    report goes out preliminary, and the warning and the mail say what is true of it: the scheduled run
    mails the complete report to the configured recipients only (it does not mail this address), and
    running the same command again once the marts hold the whole day does (the ledger lets a complete
    report follow a preliminary one, once). A configured recipient's preliminary mail says the complete
    report follows, as it does."""
    import dagster as dg

    from orchestration.defs.reports.assets import daily_kpi_reports

    day, address = "2026-11-19", "outsider.preliminary@example.com"
    arguments = ("--date", day, "--send", "--to", address, "--scope", "VIP")
    client, outbox = marts[0], smtp_sink["outbox"]

    def to_the_address() -> list:
        return messages_to(outbox, address, f"daily-{day}-VIP-zh")

    refresh_state.record_refresh(client, RAW_DATABASE, MARTS_DATABASE, datetime(2026, 11, 19, 18, 30))
    first = invoke(*arguments)
    assert first.exit_code == 0, first.output
    assert "goes out by itself only to the configured recipients" in said(first), first.output
    assert f"run this command again once the marts hold the whole of daily-{day}" in said(first)
    assert [("初步" in m["Subject"]) for m in to_the_address()] == [True]
    preliminary = mail_text(to_the_address()[0])
    assert COMPLETE_FOLLOWS not in preliminary  # nothing mails this address the complete one
    assert "完整报告不会自动发送到此地址" in preliminary and "funnelhouse report" in preliminary

    configured = invoke("--date", day, "--send", "--to", "admin@example.com")
    assert configured.exit_code == 0 and "goes out by itself only" not in said(configured), configured.output
    [to_admin] = messages_to(outbox, "admin@example.com", f"daily-{day}-all-zh")
    assert "初步" in to_admin["Subject"] and COMPLETE_FOLLOWS in mail_text(to_admin)

    refresh_state.record_refresh(client, RAW_DATABASE, MARTS_DATABASE, datetime(2026, 11, 20, 0, 30))
    assert dg.materialize([daily_kpi_reports], partition_key=day).success  # the scheduled run's report
    assert len(to_the_address()) == 1  # mailed the configured recipients, not this address

    again = invoke(*arguments)
    assert again.exit_code == 0, again.output
    assert "warning" not in said(again) and "sent 1, already sent 0, failed 0" in said(again)
    assert [("初步" in m["Subject"]) for m in to_the_address()] == [True, False]
    assert "already sent 1" in said(invoke(*arguments)) and len(to_the_address()) == 2
