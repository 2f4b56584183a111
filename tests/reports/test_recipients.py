"""Managers get their department, admins everything; a config file can add, change or drop people."""

from __future__ import annotations

import pytest

from ingestion.reports.recipients import ALL_DEPARTMENTS, resolve


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
