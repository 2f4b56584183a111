"""Metabase's path: the official ClickHouse JDBC driver (com.clickhouse:clickhouse-jdbc, over HTTP) as
the read-only ``bi_reader``.

The driver comes from Maven Central once (into the artifact cache shared with the search engines,
``devstack.search.artifacts``); ``JdbcProbe.java`` beside this file does what Metabase does on sync and
on a question, in one JVM, and prints each step as a JSON line. Without Maven or a JDK the tests skip.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from devstack.search import artifacts, java
from tests.clickhouse.conftest import bi_mart, connect, probe_steps, step_ok

DRIVER_VERSION = "0.10.0"  # 0.11.x needs a file Maven Central does not serve here
PROBE = Path(__file__).with_name("JdbcProbe.java")
BI_DATABASE = "jdbc_marts"  # a marts-like database of its own, so sync lists exactly its tables
BI_TABLE = "customer_kpis"

# Maven resolves the driver's dependencies (client-v2, httpclient5, lz4-java, ...) through a pom:
# clickhouse-jdbc has no shaded "all" jar on Maven Central at this version.
_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.funnelhouse</groupId>
  <artifactId>clickhouse-jdbc-probe</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>com.clickhouse</groupId>
      <artifactId>clickhouse-jdbc</artifactId>
      <version>{DRIVER_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def _jdk() -> java.Jdk:
    try:
        jdk = java.choose(f"clickhouse-jdbc {DRIVER_VERSION}", 11)
    except java.NoSuitableJdk as missing:
        pytest.skip(f"no JDK 11+ for the JDBC driver: {missing}")
    if not (jdk.home / "bin" / "javac").exists():
        pytest.skip(f"{jdk.home} is a JRE: launching JdbcProbe.java as a source file needs a JDK")
    return jdk


def _driver_jars(jdk: java.Jdk) -> Path:
    """The driver and its dependencies in the artifact cache, fetched on first use."""
    build = artifacts.cache_dir() / f"clickhouse-jdbc-{DRIVER_VERSION}"
    with artifacts.locked(f"clickhouse-jdbc-{DRIVER_VERSION}"):
        if (build / "ready").exists():
            return build / "lib"
        build.mkdir(exist_ok=True)
        (build / "pom.xml").write_text(_POM)
        try:
            artifacts.mvn(
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                f"-DoutputDirectory={build / 'lib'}",
                cwd=build,
                java_home=jdk.home,
            )
        except artifacts.MissingTool:
            pytest.skip(
                f"Maven (`mvn`) is needed once to fetch clickhouse-jdbc {DRIVER_VERSION}: `apt-get install maven`"
            )
        except artifacts.FetchFailed as failed:  # (the helper's message speaks of the search engine)
            pytest.fail(f"fetching clickhouse-jdbc {DRIVER_VERSION}: {failed}")
        (build / "ready").write_text(DRIVER_VERSION)
    return build / "lib"


@pytest.fixture(scope="module")
def jdbc_mart(clickhouse_server):
    with bi_mart(clickhouse_server, BI_DATABASE, BI_TABLE) as table:
        yield table


@pytest.fixture(scope="module")
def probe(clickhouse_server, jdbc_mart) -> dict[str, dict]:
    """Each step's JSON line, by step name, from one run of JdbcProbe.java as ``bi_reader``."""
    jdk = _jdk()
    jars = _driver_jars(jdk)
    info = clickhouse_server
    url = f"jdbc:clickhouse://{info['host']}:{info['port']}/{BI_DATABASE}"
    return probe_steps(
        [
            str(jdk.java),
            "-cp",
            f"{jars}/*",
            str(PROBE),
            url,
            info["readonly_user"],
            info["readonly_password"],
            BI_DATABASE,
            BI_TABLE,
        ],
        timeout=300,
    )


def test_the_driver_connects_and_reads_version_and_time_zone(probe, clickhouse_server):
    assert step_ok(probe, "connect")["driver"] == f"ClickHouse JDBC Driver {DRIVER_VERSION}"
    version = step_ok(probe, "version")["rows"][0]
    assert (
        step_ok(probe, "connect")["server"] == version["ver"]
        and version["major"] == version["ver"].split(".")[0]
    )
    reader = connect(clickhouse_server, readonly=True)
    assert step_ok(probe, "timezone")["rows"] == [{"tz": reader.command("SELECT timezone()")}]
    reader.close()


def test_sync_sees_the_database_its_table_and_typed_columns(probe):
    schemas = {row["TABLE_SCHEM"] for row in step_ok(probe, "schemas")["rows"]}
    assert {BI_DATABASE, "system"} <= schemas
    assert step_ok(probe, "catalogs")["rows"] == []  # jdbc_schema_term=schema: databases are schemas
    assert step_ok(probe, "tables")["rows"] == [
        {"TABLE_SCHEM": BI_DATABASE, "TABLE_NAME": BI_TABLE, "TABLE_TYPE": "TABLE"}
    ]
    columns = {row["COLUMN_NAME"]: row for row in step_ok(probe, "columns")["rows"]}
    assert {name: row["TYPE_NAME"] for name, row in columns.items()} == {
        "code": "String",
        "note": "Nullable(String)",
        "amount": "Decimal(12, 2)",
        "updated_at": "DateTime64(3, 'Asia/Shanghai')",
        "day": "Date",
        "deposits": "UInt64",
        "ratio": "Float64",
        "active": "Bool",
        "tags": "Array(String)",
        "channel": "LowCardinality(String)",
    }
    assert (columns["note"]["IS_NULLABLE"], columns["code"]["IS_NULLABLE"]) == ("YES", "NO")
    # java.sql.Types: what Metabase maps the columns to
    assert {
        name: int(row["DATA_TYPE"]) for name, row in columns.items() if name in ("amount", "day", "active")
    } == {
        "amount": 3,  # DECIMAL
        "day": 91,  # DATE
        "active": 16,  # BOOLEAN
    }
    assert step_ok(probe, "primary_keys")["rows"] == [{"COLUMN_NAME": "code"}]


def test_a_question_reads_every_type_as_object_and_string(probe):
    first, second = step_ok(probe, "select")["rows"]
    assert {name: (cell["class"], cell["object"]) for name, cell in first.items()} == {
        "code": ("java.lang.String", "C001"),
        "note": (None, None),
        "amount": ("java.math.BigDecimal", "1234.50"),
        "updated_at": ("java.sql.Timestamp", "2024-03-01 08:30:00.125"),
        "day": ("java.sql.Date", "2024-03-01"),
        "deposits": ("java.math.BigInteger", "18446744073709551615"),
        "ratio": ("java.lang.Double", "0.25"),
        "active": ("java.lang.Boolean", "true"),
        "tags": ("com.clickhouse.jdbc.types.Array", "[vip, 期货]"),
        "channel": ("java.lang.String", "wechat"),
    }
    # the instant and its zone survive: the wire carries the epoch, the column type the zone
    assert first["updated_at"]["zoned"] == "2024-03-01T08:30:00.125+08:00[Asia/Shanghai]"
    assert second["updated_at"]["zoned"] == "2024-03-02T23:59:59.999+08:00[Asia/Shanghai]"
    assert first["tags"]["string"] == "['vip', '期货']" and second["tags"]["object"] == "[]"
    assert (second["note"]["string"], second["amount"]["string"], second["active"]["string"]) == (
        "说明",
        "-0.01",
        "false",
    )


def test_a_prepared_statement_binds_its_parameters(probe):
    rows = step_ok(probe, "prepared")["rows"]
    assert [(row["code"], Decimal(row["amount"])) for row in rows] == [("C002", Decimal("-0.01"))]


def test_a_large_answer_arrives_whole_in_compressed_blocks(probe):
    # the driver asks for compress=1 on every query: 300,000 rows span several compressed blocks
    assert step_ok(probe, "many_rows") == {
        "step": "many_rows",
        "count": 300_000,
        "sum": sum(range(300_000)),
        "text_length": sum(len(str(n)) for n in range(300_000)),
    }


def test_a_write_is_refused_with_clickhouses_error_and_changes_nothing(probe, clickhouse_server, jdbc_mart):
    # (the driver counts code 164 as retryable: the server sees the INSERT 4 times, refuses it each time)
    refused = probe["write"]
    assert refused.get("error", "").startswith("java.sql.SQLException: Code: 164. DB::Exception:"), refused
    assert "Cannot execute query in readonly mode. (READONLY)" in refused["error"]
    client = connect(clickhouse_server)
    assert client.command(f"SELECT count() FROM {jdbc_mart}") == 2
    client.close()
