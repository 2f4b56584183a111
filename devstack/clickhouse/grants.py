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

The analyzer evaluates scalar subqueries while it resolves, so its error message may quote data (a
failed ``CAST((SELECT name FROM raw.t) AS UInt8)``). When the resolution fails, the statement's
syntax tree (``EXPLAIN AST``, which evaluates nothing) decides: if it names anything not provably
granted, the answer is the privilege error, not the engine's.
"""

from __future__ import annotations

import re

from devstack.clickhouse import sql
from devstack.clickhouse.engine import EngineConnection
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.users import User

ACCESS_DENIED = 497
ALWAYS_READABLE = frozenset(["system", "information_schema", "INFORMATION_SCHEMA"])
# Table functions that make their rows up rather than read a table (the file/network ones are refused
# earlier, by sql.EXTERNAL_FUNCTIONS).
GENERATING_FUNCTIONS = frozenset(
    name.lower()
    for name in [
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "primes",
        "generateRandom",
        "generate_series",
        "generateSeries",
        "values",
        "null",
        "format",
        "fuzzJSON",
        "fuzzQuery",
    ]
)
# Table functions whose first argument is the database they read (all of it, at most).
DATABASE_FUNCTIONS = frozenset(["merge", "mergetreeindex", "mergetreeprojection"])
# Functions whose first argument names the dictionary or Join table they read ('db.name' or 'name').
_NAMED_OBJECT_FUNCTION = re.compile(r"^(dict\w*|joinGet(OrNull)?|dictionary)$", re.IGNORECASE)

_TREE_NODE = re.compile(r"^(TABLE|TABLE_FUNCTION|FUNCTION) id: \d+,(.*)$")
_STRING_CONSTANT = re.compile(
    r"^CONSTANT id: \d+, constant_value: '((?:[^'\\]|\\.)*)', constant_value_type: [\w(]*String"
)
_CHECKED_KINDS = frozenset(["SELECT", "WITH", "("])


def check_reads(connection: EngineConnection, user: User, statement: sql.Statement, params: dict) -> None:
    """Refuse (code 497) a reading statement of ``user`` that reads outside its granted databases.

    ``connection`` must already be prepared for the request (settings, database)."""
    if user.databases is None:
        return
    query = _checked_query(statement)
    if query is None:
        return
    check = _Check(connection, user)
    try:
        tree = connection.run(f"EXPLAIN QUERY TREE {query}", "TSVRaw", params).body.decode()
    except ClickHouseError as error:
        check.syntax_only(query, params)
        raise error from None
    check.tree(tree, params)


def _checked_query(statement: sql.Statement) -> str | None:
    """The SELECT a statement runs (the one an EXPLAIN explains), without its FORMAT clause."""
    top = statement.top_level()
    if statement.kind == "EXPLAIN":
        start = next((t for t in top[1:] if t.is_word("SELECT", "WITH") or t.text == "("), None)
        if start is None:
            return None
        top = [t for t in top if t.start >= start.start]
    elif statement.kind not in _CHECKED_KINDS:
        return None  # SHOW / DESCRIBE / EXISTS read metadata, which system.* shows anyway
    # FORMAT would apply to the EXPLAIN's own answer: the clause goes (a column named "format" stays)
    text, begin = statement.sql, top[0].start if top else 0
    clause = sql.format_clause(top)
    if clause is None:
        return text[begin:]
    return text[begin : top[clause].start] + text[top[clause + 1].end :]


class _Check:
    def __init__(self, connection: EngineConnection, user: User):
        self.connection = connection
        self.user = user
        self._current: str | None = None

    def current_database(self) -> str:
        if self._current is None:
            self._current = (
                self.connection.run("SELECT currentDatabase()", "TSVRaw", {}).body.decode().strip()
            )
        return self._current

    def denied(self, grant: str) -> ClickHouseError:
        return ClickHouseError(
            ACCESS_DENIED,
            f"{self.user.name}: Not enough privileges. To execute this query, it's necessary to have "
            f"the grant {grant}",
        )

    def granted(self, database: str) -> bool:
        return database in ALWAYS_READABLE or database in self.user.databases

    def require(self, database: str, grant: str) -> None:
        if not self.granted(database):
            raise self.denied(grant)

    def qualified(self, name: str) -> tuple[str, str]:
        database, dot, rest = name.partition(".")
        return (database, rest) if dot else (self.current_database(), name)

    def unresolvable(self, function: str) -> ClickHouseError:
        return self.denied(f"SELECT ON *.* (the server cannot tell which tables {function}() reads)")

    # --- the analyzer's resolved tree ------------------------------------------------------------

    def tree(self, tree: str, params: dict, views_seen: frozenset[str] = frozenset()) -> None:
        lines = _indented(tree)
        tables = []
        for index, (_indent, text) in enumerate(lines):
            node = _TREE_NODE.match(text)
            if node is None:
                continue
            kind, rest = node.groups()
            if kind == "TABLE":
                name = re.search(r"table_name: ([^,]+)", rest).group(1)
                database, table = self.qualified(name)
                self.require(database, f"SELECT ON {database}.{table}")
                tables.append((database, table))
            elif kind == "TABLE_FUNCTION":
                self.table_function(re.search(r"table_function_name: (\w+)", rest).group(1), lines, index)
            else:
                function = re.search(r"function_name: (\w+)", rest).group(1)
                if _NAMED_OBJECT_FUNCTION.match(function):
                    self.named_object(function, _string_arguments(lines, index))
        self.views(tables, params, views_seen)

    def table_function(self, function: str, lines, index: int) -> None:
        name = function.lower()
        if name in GENERATING_FUNCTIONS:
            return
        arguments = _string_arguments(lines, index)
        if name in DATABASE_FUNCTIONS:
            if not arguments or arguments[0] is None:
                raise self.unresolvable(function)
            # merge('tables_regexp') reads the current database
            database = self.current_database() if name == "merge" and len(arguments) == 1 else arguments[0]
            self.require(database, f"SELECT ON {database}.*")
        elif _NAMED_OBJECT_FUNCTION.match(function):
            self.named_object(function, arguments)
        else:
            raise self.unresolvable(function)

    def named_object(self, function: str, arguments: list[str | None]) -> None:
        if not arguments or arguments[0] is None:
            raise self.unresolvable(function)
        database, name = self.qualified(arguments[0])
        privilege = "dictGet" if function.lower().startswith("dict") else "SELECT"
        self.require(database, f"{privilege} ON {database}.{name}")

    def views(self, tables: list[tuple[str, str]], params: dict, views_seen: frozenset[str]) -> None:
        """A normal view runs with the invoker's rights (``SQL SECURITY INVOKER``, ClickHouse's default):
        its query must pass too. One with ``SQL SECURITY DEFINER`` (or NONE), and a materialized view,
        runs with its definer's rights: reading it needs only its own database's grant."""
        for database, table in sorted(set(tables)):
            name = f"{database}.{table}"
            if database in ALWAYS_READABLE or name in views_seen:
                continue
            create = self.connection.run(
                f"SHOW CREATE TABLE {_identifier(database)}.{_identifier(table)}", "TSVRaw", {}
            ).body.decode()
            query = _invoker_view_query(create)
            if query is not None:
                tree = self.connection.run(f"EXPLAIN QUERY TREE {query}", "TSVRaw", params).body.decode()
                self.tree(tree, params, views_seen | {name})

    # --- the syntax tree, when the analyzer failed -------------------------------------------------

    def syntax_only(self, query: str, params: dict) -> None:
        try:
            ast = self.connection.run(f"EXPLAIN AST {query}", "TSVRaw", params).body.decode()
        except ClickHouseError:
            return  # not even parsable: the engine's error quotes nothing but the text
        lines = _indented(ast)
        for index, (_indent, text) in enumerate(lines):
            word, _, rest = text.partition(" ")
            name = rest.split(" (", 1)[0]
            if word == "TableIdentifier":
                if "{" in name:
                    raise self.unresolvable("a parameter")
                database, table = self.qualified(name)
                self.require(database, f"SELECT ON {database}.{table}")
            elif word == "Function" and (
                _NAMED_OBJECT_FUNCTION.match(name)
                or (
                    index
                    and lines[index - 1][1].startswith("TableExpression")
                    and name.lower() not in GENERATING_FUNCTIONS
                )
            ):
                raise self.unresolvable(name)


def _indented(dump: str) -> list[tuple[int, str]]:
    """An EXPLAIN dump's lines as (indentation, text): the indentation is the tree's nesting."""
    return [(len(line) - len(line.lstrip(" ")), line.strip()) for line in dump.splitlines()]


def _string_arguments(lines: list[tuple[int, str]], index: int) -> list[str | None]:
    """The arguments of the tree node at ``index`` (children of its ARGUMENTS LIST): each a string
    constant's value, or None when it is anything else (or a string with escapes)."""
    indent = lines[index][0]
    arguments = []
    for child_indent, text in lines[index + 1 :]:
        if child_indent <= indent:
            break
        if child_indent == indent + 6:
            constant = _STRING_CONSTANT.match(text)
            value = constant.group(1) if constant else None
            arguments.append(None if value is None or "\\" in value else value)
    return arguments


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _invoker_view_query(create: str) -> str | None:
    """The query of a ``CREATE VIEW`` that runs with the invoker's rights, else None."""
    top = [token for token in sql.tokens(create) if token.depth == 0]
    if len(top) < 2 or not (top[0].is_word("CREATE") and top[1].is_word("VIEW")):
        return None
    for index, token in enumerate(top[:-1]):
        if token.is_word("SECURITY") and top[index + 1].is_word("DEFINER", "NONE"):
            return None
        if token.is_word("AS") and (top[index + 1].is_word("SELECT", "WITH") or top[index + 1].text == "("):
            return create[top[index + 1].start :]
    return None
