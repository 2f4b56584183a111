"""Managers get their department, admins everything; a config file can add, change or drop people."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ingestion.reports.recipients import ALL_DEPARTMENTS, RecipientError, resolve
from orchestration.cli import app


def test_scope_follows_role_and_department(employees_dsn):
    recipients = {r.email: r for r in resolve(employees_dsn)}
    assert recipients["admin@example.com"].scope == ALL_DEPARTMENTS
    assert recipients["manager0.0@example.com"].scope == "ToFu"
    assert recipients["manager4.0@example.com"].scope == "培训"
    assert "gone@example.com" not in recipients  # inactive
    assert not any(email.startswith("emp") for email in recipients)  # plain employees get no report
    assert {r.language for r in recipients.values()} == {"zh"}


def test_config_file_overrides(employees_dsn, tmp_path, monkeypatch):
    config = tmp_path / "recipients.yaml"
    config.write_text(
        "exclude: [manager1.0@example.com]\n"
        "recipients:\n"
        "  - {email: Manager0.0@example.com, language: en}\n"
        "  - {email: board@example.com, name: Board, scope: all, language: en}\n"
        "  - {email: vip.deputy@example.com, scope: VIP}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    recipients = {r.email: r for r in resolve(employees_dsn)}
    assert (
        recipients["manager0.0@example.com"].language == "en"
        and recipients["manager0.0@example.com"].scope == "ToFu"
    )
    assert recipients["board@example.com"].scope == ALL_DEPARTMENTS
    assert (
        recipients["vip.deputy@example.com"].scope == "VIP"
        and recipients["vip.deputy@example.com"].language == "zh"
    )
    assert "manager1.0@example.com" not in recipients


def test_toml_config_can_replace_the_table(employees_dsn, tmp_path):
    config = tmp_path / "recipients.toml"
    config.write_text('replace = true\n[[recipients]]\nemail = "only@example.com"\nscope = "BoFu"\n')
    recipients = resolve(employees_dsn, config)
    assert [(r.email, r.scope) for r in recipients] == [("only@example.com", "BoFu")]


def test_an_entry_without_scope_only_changes_someone_who_gets_a_report(employees_dsn, tmp_path, caplog):
    """A language-only entry for a manager who left (inactive) must not make them a whole-company reader."""
    config = tmp_path / "recipients.yaml"
    config.write_text(
        "recipients:\n  - {email: gone@example.com, language: en}\n  - {email: stranger@example.com}\n"
    )
    recipients = {r.email for r in resolve(employees_dsn, config)}
    assert "manager0.0@example.com" in recipients
    assert not {"gone@example.com", "stranger@example.com"} & recipients
    assert "gone@example.com" in caplog.text and "stranger@example.com" in caplog.text


def test_a_scope_must_be_all_or_a_department(employees_dsn, tmp_path):
    config = tmp_path / "recipients.yaml"
    config.write_text("recipients:\n  - {email: tofu.deputy@example.com, scope: tofu}\n")
    with pytest.raises(ValueError, match="tofu.deputy@example.com: scope must be"):
        resolve(employees_dsn, config)


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("recipients.yaml", "exclude: manager1.0@example.com\n", "exclude"),
        ("recipients.toml", 'exclude = "manager1.0@example.com"\n', "exclude"),
        ("recipients.yaml", "exclude: [123]\n", "exclude"),
        ("recipients.toml", 'replace = "false"\n', "replace"),
        ("recipients.yaml", "replace: 'no'\n", "replace"),
        ("recipients.yaml", "default_language: 1\n", "default_language"),
        ("recipients.yaml", "default_language: fr\n", "default_language"),
        ("recipients.yaml", "recipients: {email: board@example.com, scope: all}\n", "recipients"),
        ("recipients.yaml", "recipients:\n  - {email: board@example.com, scope: all, name: 7}\n", "name"),
        ("recipients.yaml", "recipients:\n  - {email: board@example.com, scope: all, lang: en}\n", "lang"),
        ("recipients.yaml", "exlude: [manager1.0@example.com]\n", "exlude"),
    ],
    ids=[
        "exclude-yaml-string",
        "exclude-toml-string",
        "exclude-number",
        "replace-toml-string",
        "replace-yaml-string",
        "language-number",
        "language-unknown",
        "recipients-mapping",
        "entry-name-number",
        "entry-unknown-key",
        "misspelt-key",
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_naming_the_file_and_the_key(
    employees_dsn, tmp_path, name, text, key
):
    """Read loosely, ``exclude: one@address`` excluded nobody (its characters were walked),
    ``replace = "false"`` dropped every manager and admin (a non-empty string is true), and
    ``exclude: [123]`` crashed with a traceback: each is refused, in one line naming file and key."""
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    with pytest.raises(RecipientError) as raised:
        resolve(employees_dsn, config)
    [line] = str(raised.value).splitlines()
    assert line.startswith(f"recipients file {config}: "), line
    assert repr(key) in line or f" {key}: " in line, line


def test_well_typed_values_still_work(employees_dsn, tmp_path):
    config = tmp_path / "recipients.toml"
    config.write_text(
        'replace = false\ndefault_language = "en"\nexclude = ["Manager1.0@example.com"]\n', encoding="utf-8"
    )
    recipients = {r.email: r for r in resolve(employees_dsn, config)}
    assert "manager1.0@example.com" not in recipients and "manager0.0@example.com" in recipients
    assert {r.language for r in recipients.values()} == {"en"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("exclude:\nrecipients:\n", encoding="utf-8")  # keys without values: nothing changed
    assert resolve(employees_dsn, empty) == resolve(employees_dsn)


def test_the_report_command_refuses_an_exclude_that_is_one_address(report_environment, monkeypatch):
    """The reviewer's case: ``funnelhouse report`` with ``exclude:`` naming one address stops with the
    file and the key in one line (it mailed that manager before)."""
    config = report_environment / "recipients.yaml"
    config.write_text("exclude: manager1.0@example.com\n", encoding="utf-8")
    monkeypatch.setenv("FUNNELHOUSE_REPORT_RECIPIENTS", str(config))
    result = CliRunner().invoke(
        app, ["report", "--date", "2026-11-20", "--out", str(report_environment / "out")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: FUNNELHOUSE_REPORT_RECIPIENTS={config}: exclude: expected a list of e-mail addresses, "
        "not str 'manager1.0@example.com'"
    ]
    assert not (report_environment / "out").exists()


def _add_employees(dsn: str, rows: list[tuple[str, str, str, str | None]]) -> None:
    """(code, email, role, department) rows, active, in the test's ``employees``."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            """INSERT INTO public.employees (employee_code, name, email, username, password_hash, role,
                                             department, level, status)
               VALUES (%s, %s, %s, lower(%s), 'x', %s, %s, '主管', 'active')""",
            [(code, code, email, code, role, department) for code, email, role, department in rows],
        )


def test_an_address_of_an_admin_and_a_manager_gets_the_whole_company(employees_dsn, tmp_path):
    """Two employee rows whose addresses differ only in case (the column's UNIQUE is case-sensitive)
    are one mailbox: it gets the widest report its rows give, the admin's, not whichever row came last;
    a recipients file entry with a scope still decides."""
    _add_employees(
        employees_dsn,
        [
            ("EMP_BOTH_ADMIN", "Both@Example.com", "admin", None),
            ("EMP_BOTH_VIP", "both@example.com", "manager", "VIP"),
        ],
    )
    [both] = [r for r in resolve(employees_dsn) if r.email == "both@example.com"]
    assert (both.scope, both.role) == (ALL_DEPARTMENTS, "admin")

    config = tmp_path / "recipients.yaml"
    config.write_text("recipients:\n  - {email: both@example.com, scope: VIP}\n", encoding="utf-8")
    [both] = [r for r in resolve(employees_dsn, config) if r.email == "both@example.com"]
    assert both.scope == "VIP"


def test_an_address_managing_two_departments_gets_the_first_and_a_warning(employees_dsn, caplog):
    """No department's report is wider than another's: the address gets the first department's (in the
    employees table's order) every time, and a warning says to choose in the recipients file."""
    _add_employees(
        employees_dsn,
        [
            ("EMP_TWO_VIP", "two@example.com", "manager", "VIP"),
            ("EMP_TWO_BOFU", "TWO@example.com", "manager", "BoFu"),
        ],
    )
    [two] = [r for r in resolve(employees_dsn) if r.email == "two@example.com"]
    assert two.scope == "BoFu"
    assert "two@example.com" in caplog.text and "BoFu" in caplog.text and "VIP" in caplog.text
