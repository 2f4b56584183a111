"""Addresses and credentials as production gives them in the environment."""

from __future__ import annotations

import pytest

from orchestration import environment


def test_clickhouse_credentials_in_the_url_are_percent_decoded(monkeypatch):
    """A password holding '@' or '/' must be percent-encoded in a URL; the client needs it decoded."""
    monkeypatch.setenv(
        "FUNNELHOUSE_CLICKHOUSE_URL", "https://an%40analyst:p%2Fw%40rd@clickhouse.example:8443"
    )
    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_USER", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_PASSWORD", raising=False)
    settings = environment.clickhouse_settings()
    assert (settings.username, settings.password) == ("an@analyst", "p/w@rd")
    assert (settings.host, settings.port, settings.secure) == ("clickhouse.example", 8443, True)


# A password in a URL with an unencoded '/' ends the address there: the parser then reads a piece of
# the password as the port. Neither that piece nor the rest of the URL may reach the message.
_BAD_URLS = {
    "FUNNELHOUSE_SMTP_URL": (
        "smtp://mailer:s3cret-pass@127.0.0.1:notaport",
        "smtp://mailer:s3cret-pass/x@relay.example:25",
        "smtp://mailer:s3cret-pass@relay.example:70000",
    ),
    "FUNNELHOUSE_CLICKHOUSE_URL": (
        "https://analyst:s3cret-pass@clickhouse.example:notaport",
        "https://analyst:s3cret-pass/x@clickhouse.example:8443",
    ),
}
_READERS = {
    "FUNNELHOUSE_SMTP_URL": environment.smtp_settings,
    "FUNNELHOUSE_CLICKHOUSE_URL": environment.clickhouse_settings,
}


@pytest.mark.parametrize(
    ("variable", "url"), [(variable, url) for variable, urls in _BAD_URLS.items() for url in urls]
)
def test_a_url_without_a_usable_port_names_its_variable_not_its_password(monkeypatch, variable, url):
    monkeypatch.setenv(variable, url)
    with pytest.raises(environment.ConfigurationError, match=f"^{variable} has a port") as raised:
        _READERS[variable]()
    assert "s3cret" not in str(raised.value), raised.value


def test_an_smtp_url_of_another_scheme_names_the_variable(monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", "mailto://relay:25")
    with pytest.raises(
        environment.ConfigurationError,
        match=r"^FUNNELHOUSE_SMTP_URL must start with smtp:// or smtps://, not mailto://$",
    ):
        environment.smtp_settings()


def test_a_good_smtp_url_still_reads_as_before(monkeypatch):
    for name in ("FUNNELHOUSE_SMTP_USER", "FUNNELHOUSE_SMTP_PASSWORD", "FUNNELHOUSE_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", "smtps://mail%40er:p%2Fw@relay.example")
    settings = environment.smtp_settings()
    assert (settings.host, settings.port, settings.tls_mode) == ("relay.example", 465, "implicit")
    assert (settings.username, settings.password) == ("mail@er", "p/w")


@pytest.mark.parametrize(
    ("variable", "value", "reader"),
    [
        ("FUNNELHOUSE_ENV", "staging", environment.env_name),
        ("FUNNELHOUSE_TIMEZONE", "Mars/Olympus_Mons", environment.schedule_timezone),
        ("FUNNELHOUSE_TIMEZONE", "../../etc/passwd", environment.schedule_timezone),
        ("FUNNELHOUSE_TIMEZONE", "Asia", environment.schedule_timezone),  # a folder of the zone database
        (environment.KPI_FIRST_DAY_VARIABLE, "June 2019", environment.kpi_first_day),
        (
            "FUNNELHOUSE_TEST_DELAY",
            "soon",
            lambda: environment.number_setting("FUNNELHOUSE_TEST_DELAY", 1, "hours"),
        ),
    ],
)
def test_every_setting_that_cannot_be_used_names_its_variable(monkeypatch, variable, value, reader):
    monkeypatch.setenv(variable, value)
    with pytest.raises(environment.ConfigurationError, match=f"^{variable} must be "):
        reader()


def test_a_search_flavour_that_is_no_engine_names_its_variable(monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:9200")
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", "solr")
    with pytest.raises(environment.ConfigurationError, match="^FUNNELHOUSE_SEARCH_FLAVOUR must be "):
        environment.search_settings()


def test_the_schedules_zone_defaults_when_unset_or_empty_and_is_kept_when_valid(monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_TIMEZONE", raising=False)
    assert environment.schedule_timezone() == "Asia/Shanghai"
    monkeypatch.setenv("FUNNELHOUSE_TIMEZONE", " ")
    assert environment.schedule_timezone() == "Asia/Shanghai"
    monkeypatch.setenv("FUNNELHOUSE_TIMEZONE", "Asia/Kathmandu")
    assert environment.schedule_timezone() == "Asia/Kathmandu"


@pytest.mark.parametrize("value", ["10m", "-5", "0.5", "nan", "inf"])
def test_a_number_below_its_minimum_or_no_number_names_its_variable(monkeypatch, value):
    monkeypatch.setenv("FUNNELHOUSE_TEST_INTERVAL", value)
    with pytest.raises(
        environment.ConfigurationError,
        match=rf"^FUNNELHOUSE_TEST_INTERVAL must be a number of seconds \(1 or more\), not '{value}'$",
    ):
        environment.number_setting("FUNNELHOUSE_TEST_INTERVAL", 300, "seconds", minimum=1)


def test_a_number_setting_defaults_when_unset_or_empty(monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_TEST_INTERVAL", raising=False)
    assert environment.number_setting("FUNNELHOUSE_TEST_INTERVAL", 300, "seconds", minimum=1) == 300
    monkeypatch.setenv("FUNNELHOUSE_TEST_INTERVAL", " ")
    assert environment.number_setting("FUNNELHOUSE_TEST_INTERVAL", 300, "seconds", minimum=1) == 300
    monkeypatch.setenv("FUNNELHOUSE_TEST_INTERVAL", " 90 ")
    assert environment.number_setting("FUNNELHOUSE_TEST_INTERVAL", 300, "seconds", minimum=1) == 90


def test_the_report_sender_is_read_in_one_place(monkeypatch):
    """The reports (runner.py, without SMTP settings) and the SMTP settings name the same sender."""
    monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", "smtp://relay.example")
    for configured, sender in (
        (None, "funnelhouse-reports@localhost"),
        ("", "funnelhouse-reports@localhost"),
        ("crm-reports@example.com", "crm-reports@example.com"),
    ):
        if configured is None:
            monkeypatch.delenv(environment.REPORT_FROM_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(environment.REPORT_FROM_VARIABLE, configured)
        assert environment.report_sender() == sender
        assert environment.smtp_settings().sender == sender


def test_the_dbt_parse_environment_names_a_clickhouse_url_it_cannot_read(monkeypatch, tmp_path):
    """`funnelhouse manifest` and `dagster dev` parse with one environment: an unreadable URL names its
    variable (no parse with defaults); no server running, the local profile's default host."""
    from orchestration.defs.warehouse.dbt_environment import parse_environment

    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))  # no stack runs here
    for name in (
        "FUNNELHOUSE_ENV",
        "DBT_TARGET",
        "FUNNELHOUSE_CLICKHOUSE_HOST",
        "FUNNELHOUSE_CLICKHOUSE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert parse_environment()["FUNNELHOUSE_CLICKHOUSE_HOST"] == "127.0.0.1"
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", "https://fh:pa/ss@ch.example:8443")
    with pytest.raises(environment.ConfigurationError, match="^FUNNELHOUSE_CLICKHOUSE_URL has a port"):
        parse_environment()
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", "https://fh:pa%2Fss@ch.example:8443")
    parsed = parse_environment()
    assert (parsed["FUNNELHOUSE_CLICKHOUSE_HOST"], parsed["FUNNELHOUSE_CLICKHOUSE_PORT"]) == (
        "ch.example",
        "8443",
    )


def test_a_service_not_running_names_the_variable_of_a_real_server(monkeypatch, tmp_path):
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    monkeypatch.delenv("FUNNELHOUSE_ENV", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_URL", raising=False)
    with pytest.raises(
        environment.ServiceNotRunning, match="or set FUNNELHOUSE_SEARCH_URL for a real server"
    ):
        environment.search_settings()
