"""What a read-only user may read: the databases its users-file entry grants, as ``GRANT SELECT ON db.*``.

chDB has no users or grants, so the server checks them. Before a reading statement of such a user runs,
the engine's own analyzer resolves it on the connection that will run it -- same settings, query
parameters and current database -- with ``EXPLAIN QUERY TREE``: every table it reads appears there
fully qualified, whether named in a JOIN, a subquery, a CTE, ``IN (SELECT ...)`` or unqualified.
Each must be in a granted database, or in ``system`` / ``information_schema`` (any user may read those
on a real server; BI tools browse schemas there). Normal views run with the invoker's rights
(ClickHouse's ``default_normal_view_sql_security = INVOKER``), so a view's own query is checked too.
Table functions that generate data are fine; those that read tables by name are allowed only when
their arguments name a granted database, and refused when they cannot be resolved (``view()``,
``loop()``): no silent gap.

The analyzer evaluates scalar subqueries while it resolves, so what it reads there would tell the data
before any check: through its error message (a failed ``CAST((SELECT name FROM raw.t) AS UInt8)``, also
kept in ``system.errors``) or the time it takes (``sleep``). So the statement's syntax tree
(``EXPLAIN AST``, which evaluates nothing) is checked first: the tables it names (and invoker views'
queries), ``IN <table>``, and table functions and dictionaries by their literal arguments. When the
resolution fails, the syntax tree decides once more, strictly (unqualified names too): if it names
anything not provably granted, the answer is the privilege error, not the engine's.

``DESCRIBE`` evaluates what it describes (``DESCRIBE (SELECT ...)``, ``DESCRIBE format(...)``): it is
checked as ``SELECT * FROM`` that. ``SHOW ... WHERE <expr> LIMIT <expr>`` runs its expressions in a
SELECT over system tables that no EXPLAIN shows: their syntax tree decides, strictly.

Metadata: the user's connections show only the databases of :func:`visible_databases` in the system
tables (the engine's ``additional_table_filters``, fixed by readonly=1: ``Store.metadata_filter``),
so ``merge()`` or a table reading ``system`` through another one (past that filter) is refused, and so
is reading the columns that name other objects (``OTHER_OBJECTS_COLUMNS``), which no filter can blank.
``SHOW CREATE`` and ``EXISTS`` need, as on a real server, a grant on the object they name.

This module is the entry point its users import (:func:`check_reads`, :func:`visible_databases`) and
decides which part of a statement is checked; the parts live by role in ``grants_check`` (what the
grants allow, and the check of the syntax tree, the resolved tree and the views), ``grants_explain``
(reading the EXPLAIN dumps) and ``grants_text`` (what the lexer reads from SQL text).
"""

from __future__ import annotations

from devstack.clickhouse import sql
from devstack.clickhouse.engine import EngineConnection
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.grants_check import (
    ACCESS_DENIED,
    ALWAYS_READABLE,
    FORWARDING_ENGINES,
    GENERATING_FUNCTIONS,
    OTHER_OBJECTS_COLUMNS,
    ReadCheck,
)
from devstack.clickhouse.grants_text import without_format
from devstack.clickhouse.users import User

__all__ = [
    "ACCESS_DENIED",
    "ALWAYS_READABLE",
    "FORWARDING_ENGINES",
    "GENERATING_FUNCTIONS",
    "OTHER_OBJECTS_COLUMNS",
    "check_reads",
    "visible_databases",
]

_CHECKED_KINDS = frozenset(["SELECT", "WITH", "("])


def visible_databases(user: User) -> frozenset[str] | None:
    """The databases whose metadata ``user`` sees (its connections filter the system tables to them:
    ``Store.metadata_filter``), as a real server lists only what a user has a grant in; None: all."""
    if user.databases is None:
        return None
    return ALWAYS_READABLE | frozenset(user.databases)


def check_reads(connection: EngineConnection, user: User, statement: sql.Statement, params: dict) -> None:
    """Refuse (code 497) a reading statement of ``user`` that reads outside its granted databases.

    ``connection`` must already be prepared for the request (settings, database)."""
    if user.databases is None:
        return
    check = ReadCheck(connection, user)
    if _names_an_object(statement):
        check.object_statement(statement, params)
        return
    if statement.kind == "SHOW":
        # The engine turns SHOW ... WHERE <expr> LIMIT <expr> into a SELECT over system.*; EXPLAIN shows
        # none of those expressions, so their syntax decides, and what cannot be parsed so is refused.
        tail = _show_expressions(statement)
        # (over system.tables for SHOW TABLES, whose columns its expressions may name)
        if tail is not None and not check.syntax(f"SELECT 1 {tail}", params, strict=True, reads=("tables",)):
            raise check.unresolvable("SHOW")
        return
    query = _checked_query(statement)
    if query is None:
        return
    # Named tables first, before the analyzer evaluates a scalar subquery over them (its duration or
    # its error would tell the data); the resolved tree then catches what only resolution can tell.
    check.syntax(query, params, strict=False)
    try:
        tree = connection.run(f"EXPLAIN QUERY TREE {query}", "TSVRaw", params).body.decode()
    except ClickHouseError as error:
        check.syntax(query, params, strict=True)
        raise error from None
    check.tree(tree, params)


def _names_an_object(statement: sql.Statement) -> bool:
    """``EXISTS ...`` and ``SHOW CREATE ...``: they read no table, but tell an object's existence or
    definition."""
    top = statement.top_level()
    return statement.kind == "EXISTS" or (
        statement.kind == "SHOW" and len(top) > 1 and top[1].is_word("CREATE")
    )


def _checked_query(statement: sql.Statement) -> str | None:
    """The SELECT a statement runs (the one an EXPLAIN explains, or the one whose columns a DESCRIBE
    tells), without its FORMAT clause."""
    top = statement.top_level()
    prefix = ""
    if statement.kind == "EXPLAIN":
        start = next((t for t in top[1:] if t.is_word("SELECT", "WITH") or t.text == "("), None)
        if start is None:
            return None
        # ClickHouse's FROM-first form (EXPLAIN ... FROM t SELECT ...): the query begins at that FROM
        start = next((t for t in top[1:] if t.is_word("FROM") and t.start < start.start), start)
        top = [t for t in top if t.start >= start.start]
    elif statement.kind in ("DESCRIBE", "DESC"):
        # DESCRIBE (SELECT ...) and DESCRIBE f(...) evaluate what they describe, as a SELECT from it would
        # (which need not read its columns: a description shows none of their values)
        top = top[2:] if len(top) > 1 and top[1].is_word("TABLE") else top[1:]
        prefix = "SELECT count() FROM "
    elif statement.kind not in _CHECKED_KINDS:
        return None  # EXISTS names an object, no expression
    return prefix + without_format(statement, top)


def _show_expressions(statement: sql.Statement) -> str | None:
    """The WHERE / LIMIT clauses of a SHOW statement (the expressions it evaluates), or None."""
    top = statement.top_level()
    start = next((index for index, t in enumerate(top) if t.is_word("WHERE", "LIMIT")), None)
    return None if start is None else without_format(statement, top[start:])
