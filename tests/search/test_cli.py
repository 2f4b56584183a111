"""``funnelhouse search`` on the command line: its help shows real codes, its choices are checked by
typer (a misspelt platform used to search for it and find nothing), and an unknown code says so."""

from __future__ import annotations

import elastic_transport
import psycopg
import pytest
from typer.testing import CliRunner

from devstack.search import artifacts, elasticsearch, java, opensearch
from ingestion.contracts import CONTRACTS
from ingestion.generate.funnel import customer_code
from ingestion.search import indexer, query, rebuild
from ingestion.search.client import BulkFailed, BulkOutcome, SearchClient
from orchestration.cli import app
from orchestration.environment import SearchSettings
from tests.search.crm import seed_people, seed_samples
from tests.search.helpers import NO_LAG


def _invoke(*arguments: str):
    # Wide enough that rich never wraps a line of the help or the messages.
    return CliRunner().invoke(app, ["search", *arguments], env={"COLUMNS": "200"})


def test_help_shows_codes_in_the_generators_format_and_every_allowed_value():
    result = _invoke("--help")
    assert result.exit_code == 0, result.output
    assert f"e.g. {customer_code(41)}." in result.output  # CUST_0000042
    assert "e.g. EMP_0007." in result.output
    conversations = CONTRACTS["conversations"]
    for column in ("platform", "sentiment"):
        assert "|".join(conversations.column(column).allowed) in result.output, column


@pytest.mark.parametrize(
    ("option", "value"), [("--platform", "signal"), ("--sentiment", "happy"), ("--platform", "WeChat")]
)
def test_a_value_outside_the_contract_is_refused_before_searching(option, value, monkeypatch):
    # No engine anywhere: a refused value never gets as far as connecting.
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:1")
    result = _invoke("x", option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and f"'{value}' is not one of" in result.output


def _index_samples_for_the_cli(pg_dsn, search_engine, search_client, search_alias, monkeypatch) -> None:
    """The sample conversations indexed under ``search_alias``, and the CLI pointed at the engine."""
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])


def test_an_unknown_code_gets_a_hint_and_a_known_one_does_not(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    _index_samples_for_the_cli(pg_dsn, search_engine, search_client, search_alias, monkeypatch)

    result = _invoke("--customer", "CUST_0000042", "--alias", search_alias)
    assert result.exit_code == 0, result.output
    assert "0 conversation(s)" in result.output
    assert "hint: no conversation of customer CUST_0000042 in the index" in result.output

    # A real customer with nothing matching the other filters: no hint, the code is fine.
    result = _invoke("期货", "--customer", "CUST_001", "--platform", "wechat", "--alias", search_alias)
    assert result.exit_code == 0, result.output
    assert "0 conversation(s)" in result.output and "hint" not in result.output

    result = _invoke("--employee", "EMP_002", "--sentiment", "negative", "--alias", search_alias)
    assert result.exit_code == 0 and "1 conversation(s)" in result.output, result.output


def test_up_refuses_an_unknown_search_engine_with_typers_own_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    for replaced in ("FUNNELHOUSE_PG_DSN", "FUNNELHOUSE_CLICKHOUSE_URL", "FUNNELHOUSE_SMTP_URL"):
        monkeypatch.setenv(replaced, "configured-elsewhere")  # so nothing else would start either
    result = CliRunner().invoke(app, ["up", "--search", "bogus"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not the launcher's ValueError
    assert "Invalid value for '--search'" in result.output
    assert "'bogus' is not one of 'elasticsearch', 'opensearch', 'none'" in result.output


def _one_clean_error(result) -> str:
    """A failure the user can act on: exit 1, a single `Error: ...` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def only_search_would_start(tmp_path, monkeypatch):
    """`funnelhouse up` in a fresh home where every other service is configured elsewhere, no JDK is
    found (JAVA_HOME unset, an empty JVM root) and fetching an engine fails the test."""
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FUNNELHOUSE_CACHE", str(tmp_path / "cache"))
    for replaced in ("FUNNELHOUSE_PG_DSN", "FUNNELHOUSE_CLICKHOUSE_URL", "FUNNELHOUSE_SMTP_URL"):
        monkeypatch.setenv(replaced, "configured-elsewhere")
    for variable in ("FUNNELHOUSE_SEARCH_URL", "FUNNELHOUSE_SEARCH_JAVA_HOME", "JAVA_HOME"):
        monkeypatch.delenv(variable, raising=False)
    jvm_root = tmp_path / "jvm"
    jvm_root.mkdir()
    monkeypatch.setattr(java, "JVM_ROOTS", (jvm_root,))
    return jvm_root


def _up(*arguments: str):
    return CliRunner().invoke(app, ["up", *arguments], env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    ("flavour", "needs"),
    [
        ("elasticsearch", f"Elasticsearch {elasticsearch.version()} needs Java "),
        ("opensearch", f"OpenSearch {opensearch.VERSION} needs Java 17 to 21"),
    ],
)
def test_up_without_a_jdk_says_what_to_install_before_fetching_anything(
    only_search_would_start, monkeypatch, flavour, needs
):
    def no_fetch(*args, **kwargs):
        raise AssertionError("the JDK is checked before anything is fetched")

    for engine in (elasticsearch, opensearch):
        monkeypatch.setattr(engine, "prepare", no_fetch)
    monkeypatch.setattr(artifacts, "mvn", no_fetch)

    error = _one_clean_error(_up("--search", flavour))
    assert error.startswith(f"Error: search did not start: {needs}"), error
    assert "found no JDK at all" in error
    assert "apt-get install openjdk-" in error and "FUNNELHOUSE_SEARCH_JAVA_HOME" in error
    assert error.endswith("`funnelhouse up --search none`"), error


@pytest.mark.parametrize("maven", ["missing", "failing"])
def test_up_names_maven_when_it_is_missing_or_cannot_fetch(
    only_search_would_start, tmp_path, monkeypatch, maven
):
    jdk = only_search_would_start / "jdk-21"  # a JDK both engines accept, so Maven is what is missing
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").touch()
    (jdk / "release").write_text('JAVA_VERSION="21.0.5"\n')
    path = tmp_path / "path"
    path.mkdir()
    if maven == "failing":
        fake = path / "mvn"
        fake.write_text(
            "#!/bin/sh\necho '[ERROR] Could not transfer artifact: Network is unreachable'\nexit 1\n"
        )
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(path))

    error = _one_clean_error(_up())
    if maven == "missing":
        assert "Maven (`mvn`) is needed once to fetch the search engine" in error
        assert "`apt-get install maven`" in error
    else:
        assert (
            "Maven failed to fetch (or build) the search engine from Maven Central: Could not transfer"
            in error
        )
        log = artifacts.cache_dir() / "mvn-failed.log"
        assert f"full output: {log}" in error and "Network is unreachable" in log.read_text()
    assert error.endswith("`funnelhouse up --search none`"), error


@pytest.mark.parametrize("flavour", ["elasticsearch", "opensearch"])
@pytest.mark.parametrize("command", [["search", "期货"], ["reindex"], ["reindex", "--full"]])
def test_an_unreachable_engine_is_one_line_naming_its_url(tmp_path, monkeypatch, command, flavour):
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://admin:s3cret@127.0.0.1:9")  # nothing listens on 9
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", flavour)
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", "postgresql://nobody@127.0.0.1:9/never-reached")
    result = CliRunner().invoke(app, command, env={"COLUMNS": "200"})
    error = _one_clean_error(result)
    assert error.startswith(f"Error: cannot reach the {flavour} search engine at http://127.0.0.1:9 "), error
    assert "Connection refused" in error and "`funnelhouse up`" in error
    assert "s3cret" not in result.output


def test_no_engine_configured_or_running_says_to_run_up(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_URL", raising=False)
    error = _one_clean_error(_invoke("期货"))
    assert "no search address configured and no embedded search running" in error
    assert "`funnelhouse up`" in error


class _Unused:
    flavour, version = "elasticsearch", "9.2.0"

    def close(self):
        pass


@pytest.mark.parametrize(
    ("arguments", "patched", "raised", "expected"),
    [
        (
            ["--full"],
            "full_rebuild",
            rebuild.RebuildInProgress("a full rebuild of 'c' is already running"),
            "Error: a full rebuild of 'c' is already running (try again when it has finished)",
        ),
        (
            ["--rollback"],
            "roll_back",
            rebuild.RebuildInProgress("a full rebuild of 'c' is running; roll back after it"),
            "Error: a full rebuild of 'c' is running; roll back after it",
        ),
        (
            ["--rollback"],
            "roll_back",
            rebuild.NothingToRollBackTo("'c' has no previous index to roll back to"),
            "Error: cannot roll back: 'c' has no previous index to roll back to",
        ),
        (
            ["--full"],
            "full_rebuild",
            rebuild.RebuildVerificationFailed("c_v1 holds 9 documents, PostgreSQL's 10"),
            "Error: the rebuild failed its check and was dropped, the alias did not move: c_v1 holds 9 documents",
        ),
        (
            [],
            "synchronise",
            BulkFailed(BulkOutcome(failed=[{"_id": "7", "error": "mapper_parsing_exception"}])),
            "Error: 1 document(s) failed to index",
        ),
        (
            [],
            "synchronise",
            psycopg.OperationalError('connection to server at "127.0.0.1", port 9 failed\nmore'),
            'Error: cannot use PostgreSQL: connection to server at "127.0.0.1", port 9 failed',
        ),
        (
            ["--full"],
            "full_rebuild",
            elastic_transport.ConnectionError("HTTPConnection: [Errno 111] Connection refused"),
            "Error: cannot reach the elasticsearch search engine at http://127.0.0.1:9 (Connection refused)",
        ),
    ],
    ids=[
        "rebuild-running",
        "rollback-during-rebuild",
        "no-previous",
        "unverified",
        "bulk",
        "pg-down",
        "engine-lost",
    ],
)
def test_reindex_failures_are_one_line(tmp_path, monkeypatch, arguments, patched, raised, expected):
    """What reindex can run into once connected, without an engine: the operations are stand-ins."""
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", "elasticsearch")
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", "postgresql://nobody@127.0.0.1:9/never-reached")
    monkeypatch.setattr(SearchClient, "connect", lambda settings, timeout=60.0: _Unused())

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(indexer if patched == "synchronise" else rebuild, patched, fail)
    result = CliRunner().invoke(app, ["reindex", *arguments], env={"COLUMNS": "200"})
    error = _one_clean_error(result)
    assert error.startswith(expected), error


# A pasted text of 1,030 Chinese characters: OpenSearch 2.19 refused it (HTTP 400, "maxClauseCount is
# set to 1024"), and the command printed the client's traceback.
_PASTED = "".join(chr(0x4E00 + (i * 7) % 20000) for i in range(1030))


@pytest.mark.parametrize("search_engine", ["opensearch"], indirect=True)
def test_a_search_text_too_long_or_refused_by_the_engine_is_one_line(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    _index_samples_for_the_cli(pg_dsn, search_engine, search_client, search_alias, monkeypatch)

    error = _one_clean_error(_invoke(_PASTED, "--alias", search_alias))
    assert error == (
        f"Error: the search text is 1,030 characters long, at most {query.MAX_QUERY_CHARACTERS} are "
        "searched: keep the words you are looking for"
    )
    # Whatever else the engine refuses as a bad request: here the same text, past a limit raised for it.
    monkeypatch.setattr(query, "MAX_QUERY_CHARACTERS", 2000)
    error = _one_clean_error(_invoke(_PASTED, "--alias", search_alias))
    assert error.startswith("Error: the search engine refused the query: "), error
    assert "maxClauseCount is set to 1024" in error


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_search_quarantine_refuses_a_limit_below_one_before_connecting(monkeypatch, limit):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:1")  # never reached
    result = CliRunner().invoke(app, ["search-quarantine", "--limit", limit], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--limit'" in result.output and "Traceback" not in result.output


def test_search_settings_keep_the_password_out_of_their_repr():
    settings = SearchSettings(
        "https://es.internal:9200", "elasticsearch", username="admin", password="s3cret"
    )
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    assert "username='admin'" in repr(settings) and settings.password == "s3cret"
