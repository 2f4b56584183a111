"""A file whose parent file of the same run could not be loaded (undecodable, unreadable, refused).

The project's rule for a dependant of a failed file (sensor, assets, ``funnelhouse ingest``): it is
not held back, its rows that need the missing parents are quarantined as unknown references, and
they load when the dependant is ingested again once the parent is fixed (``ledger.loaded_copy``).
What these tests add: the quarantine names the file that could not be loaded - only for a key among
its rejected rows, or as one that may hold it when it was never read - and what happens next, and
the run's report tells the same, rather than "fix the file" about a dependant that has nothing to fix.
"""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from ingestion.load.landing import discover
from ingestion.load.pipeline import ingest
from orchestration.cli import app
from tests.ingestion import landing_rows as rows


def _undecodable(path) -> None:
    """``path`` as Excel's GBK "CSV" would leave it: not UTF-8, so the whole file fails."""
    path.write_bytes(path.read_bytes().replace("客户1".encode(), "客户1".encode("gb18030")))


@pytest.fixture
def broken_parent(landing, run_ingest):
    """CUST_0009 loaded by an earlier run; now an undecodable customers file (the only one holding
    CUST_0001) and deposits of both customers wait in the landing zone."""
    rows.write(landing, "employees", "b0", [rows.employee(1)])
    rows.write(landing, "customers", "b0", [rows.customer(9)])
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}
    _undecodable(rows.write(landing, "customers", "b1", [rows.customer(1), rows.customer(2)]))
    rows.write(
        landing,
        "deposits",
        "b1",
        [rows.deposit(1, customer_code="CUST_0001"), rows.deposit(2, customer_code="CUST_0009")],
    )
    return landing


def _rejects(sql, path) -> list[tuple]:
    return sql(
        "SELECT row_number, rule, reason FROM funnelhouse.ingest_rejects WHERE path = %s ORDER BY 1",
        str(path),
    )


def test_a_dependant_of_an_undecodable_file_quarantines_naming_it_and_loads_once_it_is_fixed(
    broken_parent, run_ingest, sql
):
    landing = broken_parent
    customers, deposits = landing / "customers__b1.csv", landing / "deposits__b1.csv"
    results = run_ingest(landing, only_pending=True)  # plain `funnelhouse ingest`
    assert results["customers__b1.csv"].status == "failed"
    result = results["deposits__b1.csv"]
    # Not loaded against the half-loaded batch, not dropped: the known customer's deposit loads,
    # the other is quarantined with the file that could not be loaded and what to run once it is fixed.
    assert (result.status, result.rows_loaded, result.rejected_for_parents) == ("loaded", 1, 1)
    assert result.waiting_for == [str(customers)]
    [(row, rule, reason)] = _rejects(sql, deposits)
    assert (row, rule) == (1, "reference:customer_code")
    assert reason.startswith("customer_code 'CUST_0001' is not a known customers.customer_code")
    assert f"customers file {customers} could not be loaded in this run" in reason
    assert f"run `funnelhouse ingest {deposits}`" in reason
    assert sql("SELECT deposit_code FROM deposits") == [("DEP_20250101_2",)]

    # The parent fixed: the run that loads it leaves the deposits path alone (tried there), and
    # the command named loads the quarantined row; run again, it changes nothing.
    rows.write(landing, "customers", "b1", [rows.customer(1), rows.customer(2)])
    assert {n: r.status for n, r in run_ingest(landing, only_pending=True).items()} == {
        "customers__b1.csv": "loaded"
    }
    assert run_ingest(landing, only_pending=True) == {}
    again = run_ingest(deposits)["deposits__b1.csv"]
    assert (again.status, again.rows_loaded, again.rows_rejected, again.rows_changed) == ("loaded", 2, 0, 1)
    assert again.waiting_for == []
    assert run_ingest(deposits)["deposits__b1.csv"].status == "duplicate"
    assert sql("SELECT count(*) FROM deposits") == [(2,)]


@pytest.fixture
def rejected_parent(landing, run_ingest):
    """A customers file of the run whose one row (CUST_RB1) is rejected, so the file fails with its
    rejects kept, and deposits naming that customer, one that exists nowhere, and a loaded one."""
    rows.write(landing, "employees", "b0", [rows.employee(1)])
    rows.write(landing, "customers", "b0", [rows.customer(9)])
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}
    rows.write(landing, "customers", "r02a", [rows.customer(1, customer_code="CUST_RB1", tier="Q")])
    rows.write(
        landing,
        "deposits",
        "r04",
        [
            rows.deposit(1, customer_code="CUST_RB1"),
            rows.deposit(2, customer_code="CUST_LATER1"),
            rows.deposit(3, customer_code="CUST_0009"),
        ],
    )
    return landing


def _names_only_the_file_holding_the_key(sql, landing) -> None:
    customers, deposits = landing / "customers__r02a.csv", landing / "deposits__r04.csv"
    (_, rule_1, reason_1), (_, rule_2, reason_2) = _rejects(sql, deposits)
    assert rule_1 == rule_2 == "reference:customer_code"
    assert reason_1.startswith("customer_code 'CUST_RB1' is not a known customers.customer_code")
    assert f"customers file {customers} could not be loaded in this run and holds the key" in reason_1
    assert str(customers) not in reason_2  # CUST_LATER1 is in no file: r02a is not to blame
    assert reason_2 == (
        "customer_code 'CUST_LATER1' is not a known customers.customer_code (not in PostgreSQL): once "
        f"customers has loaded the key, run `funnelhouse ingest {deposits}` (or drop the file again under a "
        "new name) to load this row: the landing sensor does not retry a path it tried"
    )


def test_a_failed_parent_file_is_named_only_for_the_keys_among_its_rejected_rows(
    rejected_parent, run_ingest, sql
):
    landing = rejected_parent
    results = run_ingest(landing, only_pending=True)
    assert results["customers__r02a.csv"].status == "failed"
    result = results["deposits__r04.csv"]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 1, 2)
    assert (result.rejected_for_parents, result.waiting_for) == (1, [str(landing / "customers__r02a.csv")])
    _names_only_the_file_holding_the_key(sql, landing)

    # r02a fixed: it loads, and the command named loads the deposits again; CUST_RB1's row loads,
    # CUST_LATER1's is still rejected, without blaming r02a.
    rows.write(landing, "customers", "r02a", [rows.customer(1, customer_code="CUST_RB1")])
    assert [r.status for r in run_ingest(landing, only_pending=True).values()] == ["loaded"]
    retried = run_ingest(landing / "deposits__r04.csv")["deposits__r04.csv"]
    assert (retried.rows_loaded, retried.rows_rejected, retried.waiting_for) == (2, 1, [])
    [(row, reason)] = sql(
        "SELECT row_number, reason FROM funnelhouse.ingest_rejects WHERE file_id = %s", retried.file_id
    )
    assert row == 2 and reason.startswith("customer_code 'CUST_LATER1'") and "r02a" not in reason
    assert sorted(sql("SELECT deposit_code FROM deposits")) == [("DEP_20250101_1",), ("DEP_20250101_3",)]


def test_a_parent_file_failed_in_another_step_of_the_run_is_named_only_for_its_keys(
    rejected_parent, pg_dsn, sql
):
    """Dagster's path: the customers step and the deposits step are calls of their own, sharing the run_id."""
    landing = rejected_parent
    [failed] = ingest(pg_dsn, discover([str(landing / "customers__r02a.csv")]), run_id="run-1")
    assert (failed.status, failed.rows_rejected) == ("failed", 1)
    [result] = ingest(pg_dsn, discover([str(landing / "deposits__r04.csv")]), run_id="run-1")
    assert (result.rejected_for_parents, result.waiting_for) == (1, [str(landing / "customers__r02a.csv")])
    _names_only_the_file_holding_the_key(sql, landing)


def test_a_dependant_whose_rows_all_need_the_failed_file_says_to_load_it_not_to_fix_it(
    broken_parent, run_ingest, sql
):
    landing = broken_parent
    deposits = rows.write(landing, "deposits", "b1", [rows.deposit(1, customer_code="CUST_0001")])
    result = run_ingest(landing, only_pending=True)["deposits__b1.csv"]
    assert (result.status, result.rows_rejected) == ("failed", 1)
    assert "fix the file" not in result.error
    assert f"{landing / 'customers__b1.csv'}" in result.error and "could not be loaded" in result.error
    assert f"run `funnelhouse ingest {deposits}`" in result.error
    assert sql("SELECT status, error FROM funnelhouse.ingest_files WHERE path = %s", str(deposits)) == [
        ("failed", result.error)
    ]


def test_only_rows_needing_the_failed_table_name_it(broken_parent, run_ingest, sql):
    """A reference to another table (an unknown employee) keeps its plain reason."""
    landing = broken_parent
    rows.write(
        landing,
        "deposits",
        "b1",
        [rows.deposit(1, customer_code="CUST_0009", employee_code="EMP_404"), rows.deposit(2)],
    )
    result = run_ingest(landing, only_pending=True)["deposits__b1.csv"]
    assert (result.rows_loaded, result.rejected_for_parents, result.waiting_for) == (
        0,
        1,
        [str(landing / "customers__b1.csv")],
    )
    reasons = [reason for _, _, reason in _rejects(sql, landing / "deposits__b1.csv")]
    assert reasons[0] == (
        "employee_code 'EMP_404' is not a known employees.employee_code (not in PostgreSQL): once "
        f"employees has loaded the key, run `funnelhouse ingest {landing / 'deposits__b1.csv'}` (or drop "
        "the file again under a new name) to load this row: the landing sensor does not retry a path it tried"
    )
    assert "could not be loaded in this run" in reasons[1] and "employees" not in reasons[1]


def test_a_parent_that_cannot_be_opened_is_named_too(broken_parent, pg_dsn, sql, monkeypatch):
    """A file held unreadable (no permission) has no ledger row: the run's own list names it."""
    from tests.ingestion.test_landing_unreadable import _opening_fails

    landing = broken_parent
    rows.write(landing, "customers", "b1", [rows.customer(1)])  # decodable, but not ours to open
    _opening_fails(monkeypatch, "customers__b1.csv", PermissionError, 13, "Permission denied")
    results = {r.file.name: r for r in ingest(pg_dsn, discover([str(landing)]), only_pending=True)}
    assert "customers__b1.csv" not in results  # held, not attempted
    assert results["deposits__b1.csv"].waiting_for == [str(landing / "customers__b1.csv")]
    [(_, _, reason)] = _rejects(sql, landing / "deposits__b1.csv")
    assert f"customers file {landing / 'customers__b1.csv'} could not be loaded in this run" in reason


def test_the_same_run_id_names_a_parent_that_failed_in_another_step(broken_parent, pg_dsn, sql):
    """Dagster's assets load a table per step, all steps of a run sharing its run_id: the ledger of
    the run tells the deposits step which customers file failed."""
    landing = broken_parent
    [failed] = ingest(pg_dsn, discover([str(landing / "customers__b1.csv")]), run_id="run-1")
    assert failed.status == "failed"
    [other_run] = ingest(pg_dsn, discover([str(landing / "deposits__b1.csv")]), run_id="run-2")
    assert other_run.waiting_for == []  # another run's failure is not this run's
    rows.write(landing, "deposits", "b2", [rows.deposit(3, customer_code="CUST_0002")])
    [same_run] = ingest(pg_dsn, discover([str(landing / "deposits__b2.csv")]), run_id="run-1")
    assert same_run.waiting_for == [str(landing / "customers__b1.csv")]


def test_ingest_reports_the_rows_waiting_for_the_file_it_could_not_load(broken_parent, pg_dsn):
    result = CliRunner().invoke(app, ["ingest"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())  # (rich wraps long lines)
    deposits = broken_parent / "deposits__b1.csv"
    assert (
        f"waiting deposits__b1.csv: 1 rejected row(s) name keys missing because "
        f"{broken_parent / 'customers__b1.csv'} could not be loaded in this run and may hold the key: fix it; "
        f"once the table it names has loaded the key, run `funnelhouse ingest {deposits}` (or drop the file "
        "again under a new name) to load this row: the landing sensor does not retry a path it tried"
    ) in output


def test_a_landing_path_with_quotes_and_percent_signs_is_named_as_it_is(tmp_path, run_ingest, sql):
    """The reason is SQL text run with parameters: a ' or a % in a URL must come out as written."""
    landing = tmp_path / "it's 100%s"
    landing.mkdir()
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    _undecodable(rows.write(landing, "customers", "b1", [rows.customer(1)]))
    rows.write(landing, "deposits", "b1", [rows.deposit(1)])
    result = run_ingest(landing)["deposits__b1.csv"]
    assert (result.status, result.rejected_for_parents) == ("failed", 1)
    [(_, _, reason)] = _rejects(sql, landing / "deposits__b1.csv")
    assert f"customers file {landing / 'customers__b1.csv'} could not be loaded" in reason
    # The command it names runs as given in a shell: the path is quoted, not cut at its quote.
    command = reason.rsplit("`", 2)[1]
    assert shlex.split(command) == ["funnelhouse", "ingest", str(landing / "deposits__b1.csv")]


def test_a_customer_whose_referrer_comes_in_a_later_batch_loads_when_its_file_is_loaded_again(
    landing, run_ingest, sql
):
    """A self-reference: the earlier batch loaded again (the command its reason names) loads the row
    (a new key, so not held back as an older batch's change); the path is not retried by itself."""
    rows.write(landing, "employees", "b0", [rows.employee(1)])
    rows.write(landing, "customers", "a1", [rows.customer(1), rows.customer(2, referrer_code="CUST_0003")])
    first = run_ingest(landing, only_pending=True)["customers__a1.csv"]
    assert (first.rows_loaded, first.rows_rejected) == (1, 1)
    rows.write(landing, "customers", "a2", [rows.customer(3)])
    assert list(run_ingest(landing, only_pending=True)) == ["customers__a2.csv"]
    assert run_ingest(landing, only_pending=True) == {}
    retried = run_ingest(landing / "customers__a1.csv")
    assert (retried["customers__a1.csv"].rows_rejected, retried["customers__a1.csv"].rows_changed) == (0, 1)
    assert sql(
        "SELECT c.customer_code, r.customer_code FROM customers c JOIN customers r ON r.id = c.referrer_id"
    ) == [("CUST_0002", "CUST_0003")]
