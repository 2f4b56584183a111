"""``funnelhouse backfill``: rebuild whole months of the incremental facts (after a logic fix or a
repaired raw month) without a full refresh.

dbt runs the selected facts incrementally with the months in its environment
(FACT_BACKFILL_ENVIRONMENT, set by backfill_environment only, read by dbt_project/macros/fact_backfill.sql):
each deletes its rows of those months, appends the live rows of those months from staging and deletes
the other months' older versions of those rows, and moves no watermark, so the next ordinary build still carries every change.
It runs as ``funnelhouse dbt run`` does: holding the warehouse writer lock, up to the committed
watermarks."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from orchestration.console import make_console

console = make_console()

# The facts a backfill can rebuild, with the Date column each is partitioned by (toYYYYMM) and its
# backfill deletes by: the third argument of its pre-hook delete_replicated_ids (and the second of its
# post-hook delete_moved_rows).
FACT_MONTH_COLUMNS = {
    "fct_conversations": "sent_date",
    "fct_deposits": "deposit_date",
    "fct_withdrawals": "requested_date",
}
# As macros/fact_backfill.sql checks it (for a hand-run dbt); checked here before waiting for the lock.
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _month(value: str | None) -> str | None:
    if value is not None and not _MONTH.fullmatch(value):
        raise typer.BadParameter(f"a month as YYYY-MM (e.g. 2025-01), not {value!r}")
    return value


def _rows_per_month(facts: list[str], first: str, last: str) -> dict[tuple[str, str], int]:
    """{(fact, 'YYYY-MM'): rows} of the months first..last, for the facts that exist."""
    from ingestion.replication.connections import clickhouse_client
    from orchestration.defs.warehouse.build import marts_schema

    client = clickhouse_client()
    core = marts_schema().removesuffix("marts") + "core"
    counts: dict[tuple[str, str], int] = {}
    for fact in facts:
        relation, day = f"`{core}`.`{fact}`", FACT_MONTH_COLUMNS[fact]
        if not client.command(f"exists table {relation}"):
            continue
        rows = client.query(
            f"select formatDateTime({day}, '%Y-%m') as month, count() from {relation}"
            f" where toYYYYMM({day}) between {{first:UInt32}} and {{last:UInt32}} group by month",
            parameters={"first": int(first.replace("-", "")), "last": int(last.replace("-", ""))},
        ).result_rows
        counts.update({(fact, month): count for month, count in rows})
    return counts


def register(app: typer.Typer) -> None:
    @app.command()
    def backfill(
        from_month: Annotated[
            str, typer.Option("--from", callback=_month, help="First month to rebuild, YYYY-MM.")
        ],
        to_month: Annotated[
            str | None,
            typer.Option("--to", callback=_month, help="Last month to rebuild, YYYY-MM (default: --from)."),
        ] = None,
        select: Annotated[
            list[str] | None,
            typer.Option(
                "--select", "-s", help=f"Facts to rebuild (default: all: {', '.join(FACT_MONTH_COLUMNS)})."
            ),
        ] = None,
    ) -> None:
        """Rebuild the months --from..--to of the incremental facts from staging, in place.

        Their rows of those months are replaced by the live rows of those months; other months lose
        only the older versions of rows moved into those months, and the facts' watermarks are left
        as they are. Models reading the facts are not rebuilt: the nightly full build takes the months
        up (docs/warehouse.md)."""
        from orchestration.commands.warehouse import busy_is_an_error
        from orchestration.defs.warehouse.build import dbt_command
        from orchestration.defs.warehouse.dbt_environment import backfill_environment
        from orchestration.output import print_line

        to_month = to_month or from_month
        if to_month < from_month:
            raise typer.BadParameter(f"{to_month} is before --from {from_month}", param_hint="--to")
        facts = list(dict.fromkeys(select or FACT_MONTH_COLUMNS))
        unknown = [fact for fact in facts if fact not in FACT_MONTH_COLUMNS]
        if unknown:
            raise typer.BadParameter(
                f"{', '.join(unknown)}: not an incremental fact ({', '.join(FACT_MONTH_COLUMNS)})",
                param_hint="--select",
            )

        # Counted outside the writer lock dbt_command takes: what another writer changes meanwhile
        # shows in these numbers only.
        before = _rows_per_month(facts, from_month, to_month)
        # Run even when the facts hold no rows of those months: staging may (a month whose rows were
        # lost is what a backfill is for), and only dbt knows which staging rows a fact takes. With
        # none there either it deletes and appends nothing and moves no watermark: safe to run again.
        with backfill_environment(from_month, to_month), busy_is_an_error():
            exit_code = dbt_command(["run", "--select", *facts], log=print_line)
        if exit_code != 0:
            typer.echo(f"Error: the backfill's dbt run failed (exit {exit_code})", err=True)
            raise typer.Exit(exit_code)
        after = _rows_per_month(facts, from_month, to_month)
        _print_rows(facts, from_month, to_month, before, after)


def _print_rows(
    facts: list[str],
    first: str,
    last: str,
    before: dict[tuple[str, str], int],
    after: dict[tuple[str, str], int],
) -> None:
    """The rows before and after of each fact and month that had or has any; the facts with none in
    those months named in a line of their own (an empty table would say nothing: a month with no data
    yet, a month before the data starts)."""
    counted = before.keys() | after.keys()
    with_rows = {fact for fact, _ in counted}
    empty = [fact for fact in facts if fact not in with_rows]
    if counted:
        table = Table("fact", "month", "rows before", "rows after", title=f"backfill {first}..{last}")
        for fact, month in sorted(counted):
            table.add_row(fact, month, str(before.get((fact, month), 0)), str(after.get((fact, month), 0)))
        console.print(table)
    if empty:
        console.print(
            f"no rows of {', '.join(empty)} in {first}..{last}, before or after the backfill: "
            "nothing to rebuild",
            highlight=False,
        )
