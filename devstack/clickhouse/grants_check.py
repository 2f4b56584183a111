"""The check of one reading statement against a read-only user's granted databases (:class:`ReadCheck`).

What the grants allow (the databases any user reads, the table functions that make their rows up, the
table engines and functions that read another table or a dictionary, the system columns naming other
objects, the privileges of ``SHOW CREATE`` / ``EXISTS``), checked on the statement's syntax tree
(``EXPLAIN AST``), on the analyzer's resolved tree (``EXPLAIN QUERY TREE``) and on the queries of the
invoker views and the tables of the forwarding engines it reads. ``grants.check_reads`` decides what
of a statement is checked.
"""

from __future__ import annotations

import re

from devstack.clickhouse import sql
from devstack.clickhouse.engine import EngineConnection
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.grants_explain import (
    AST_LITERAL,
    counts_rows,
    indented,
    is_in_table,
    own_tables,
    string_arguments,
)
from devstack.clickhouse.grants_text import invoker_view_query, quote_identifier, table_engine, without_format
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
# Table engines that read another table (whose rows a reader of the table gets): the position of the
# argument naming that table's database (followed by the table, or written 'db.table').
FORWARDING_ENGINES = {"merge": 0, "buffer": 0, "alias": 0, "distributed": 1}
# Functions whose first argument names the dictionary or Join table they read ('db.name' or 'name').
_NAMED_OBJECT_FUNCTION = re.compile(
    r"^(dict\w*|joinGet(OrNull)?|dictionary|naiveBayesClassifier\w*|assignCentroid)$", re.IGNORECASE
)
# The argument naming the dictionary, where it is not the first (assignCentroid(vector, 'db.dict')).
_NAMED_OBJECT_POSITION = {"assigncentroid": 1}
# Functions telling a table's metadata from its database and name, their first two arguments.
_TABLE_METADATA_FUNCTION = re.compile(r"^hasColumnInTable$", re.IGNORECASE)

_TREE_NODE = re.compile(r"^(TABLE|TABLE_FUNCTION|FUNCTION) id: (\d+),(.*)$")
_TREE_COLUMN = re.compile(r"^COLUMN id: \d+, column_name: (.+?), result_type: .*, source_id: (\d+)$")
# System tables' columns naming other objects than the row's own, in any database: the materialized views
# reading a table, the objects loaded before or after it, a Kafka table's views, the tables of a Graphite
# rollup. (A real server lists them unfiltered.) The engine filters rows by database
# (``Store.metadata_filter``) but cannot blank a column per user, so a read-only user's query that reads
# one (named, or by ``*`` / ``COLUMNS(...)``) is refused as a real server refuses a column without a
# grant (``SELECT(dependencies_table) ON system.tables``). A row's own definition (``create_table_query``,
# ``as_select``, ``target_table``) stays readable, as ``SHOW CREATE`` of a granted view is.
OTHER_OBJECTS_COLUMNS = {
    "tables": frozenset(
        f"{prefix}_{part}"
        for prefix in ("dependencies", "loading_dependencies", "loading_dependent")
        for part in ("database", "table")
    ),
    "kafka_consumers": frozenset(["dependencies", "missing_dependencies"]),
    "graphite_retentions": frozenset(["Tables", "Tables.database", "Tables.table"]),
}
# EXPLAIN AST nodes standing for all (or a pattern's) columns of a table
_EXPANDING_NODES = frozenset(
    [
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsRegexpMatcher",
        "ColumnsListMatcher",
        "QualifiedColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
    ]
)
# What a statement telling an object's definition or existence needs on a real server
# (InterpreterShowCreateQuery, InterpreterExistsQuery), by its EXPLAIN AST node: the privilege, and
# whether the object is a database. (SHOW CREATE USER, ROLE, ... name no database's object.)
_OBJECT_STATEMENTS = {
    "ShowCreateTableQuery": ("SHOW COLUMNS", False),
    "ShowCreateViewQuery": ("SHOW COLUMNS", False),
    "ShowCreateDictionaryQuery": ("SHOW DICTIONARIES", False),
    "ShowCreateDatabaseQuery": ("SHOW DATABASES", True),
    "ExistsTableQuery": ("SHOW TABLES", False),
    "ExistsViewQuery": ("SHOW TABLES", False),
    "ExistsDictionaryQuery": ("SHOW DICTIONARIES", False),
    "ExistsDatabaseQuery": ("SHOW DATABASES", True),
}
_OBJECT_NODE = re.compile(r"^(\w+) .* \(children (\d+)\)$")


class ReadCheck:
    def __init__(self, connection: EngineConnection, user: User):
        self.connection = connection
        self.user = user
        self._current: str | None = None
        self._cleared: set[str] = set()  # tables whose sources were checked (by the syntax, then the tree)

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

    def require_source(self, database: str, grant: str) -> None:
        """A database read through another table or ``merge()``: granted, and not ``system``, whose
        tables hide other databases' rows (``visible_databases``) only from a query reading them."""
        if database == "system":
            raise self.denied(f"{grant} (read through another table, system tables list every database)")
        self.require(database, grant)

    # --- statements naming an object -------------------------------------------------------------

    def object_statement(self, statement: sql.Statement, params: dict) -> None:
        """``SHOW CREATE`` / ``EXISTS`` of an object outside the grants: refused with the privilege a
        real server asks for. The object's name is the syntax tree's (quotes and parameters resolved);
        a tree whose identifiers do not add up (a name with a line break) is refused."""
        query = without_format(statement, statement.top_level())
        # (split on line feeds only, unstripped: a name may hold other breaks and end in spaces)
        header, *children = (
            self.connection.run(f"EXPLAIN AST {query}", "TSVRaw", params).body.decode().split("\n")
        )
        kind = header.split(" ", 1)[0]
        if kind not in _OBJECT_STATEMENTS:
            return  # SHOW CREATE USER, ROLE, ...: no database's object
        privilege, is_database = _OBJECT_STATEMENTS[kind]
        node = _OBJECT_NODE.match(header)
        children = children[:-1] if children and children[-1] == "" else children
        identifiers = children[:-1] if children and children[-1] == " Set" else children  # SETTINGS ...
        if (
            node is None
            or int(node.group(2)) != len(children)
            or not 1 <= len(identifiers) <= (1 if is_database else 2)
            or not all(line.startswith(" Identifier ") for line in identifiers)
        ):
            raise self.denied("SHOW ON *.* (the server cannot tell which object the statement names)")
        names = [line[len(" Identifier ") :] for line in identifiers]
        if is_database:
            self.require(names[0], f"{privilege} ON {names[0]}.*")
            return
        # one name is the current database's table (a parameter's 'db.table' value too: one name)
        database, name = names if len(names) == 2 else (self.current_database(), names[0])
        self.require(database, f"{privilege} ON {database}.{name}")

    # --- the analyzer's resolved tree ------------------------------------------------------------

    def tree(self, tree: str, params: dict, views_seen: frozenset[str] = frozenset()) -> None:
        lines = indented(tree)
        tables = []
        sources = {}  # a TABLE node's id -> its (database, table)
        columns = []  # (column, its source's node id)
        for index, (_indent, text) in enumerate(lines):
            column = _TREE_COLUMN.match(text)
            if column is not None:
                columns.append(column.groups())
            node = _TREE_NODE.match(text)
            if node is None:
                continue
            kind, node_id, rest = node.groups()
            if kind == "TABLE":
                name = re.search(r"table_name: ([^,]+)", rest).group(1)
                database, table = self.qualified(name)
                self.require(database, f"SELECT ON {database}.{table}")
                tables.append((database, table))
                sources[node_id] = (database, table)
            elif kind == "TABLE_FUNCTION":
                function = re.search(r"table_function_name: (\w+)", rest).group(1)
                self.table_function(function, string_arguments(lines, index))
            else:
                function = re.search(r"function_name: (\w+)", rest).group(1)
                if _NAMED_OBJECT_FUNCTION.match(function):
                    self.named_object(function, string_arguments(lines, index))
                elif _TABLE_METADATA_FUNCTION.match(function):
                    self.table_metadata(function, string_arguments(lines, index))
        for name, source in columns:
            if source in sources:
                self.other_objects_columns([sources[source]], [name], set())
        self.views(tables, params, views_seen)

    def table_function(self, function: str, arguments: list[str | None]) -> None:
        name = function.lower()
        if name in GENERATING_FUNCTIONS:
            return
        if name in sql.DATABASE_FUNCTIONS:  # their first argument is the database they read
            if not arguments or arguments[0] is None:
                raise self.unresolvable(function)
            # merge('tables_regexp') reads the current database
            database = self.current_database() if name == "merge" and len(arguments) == 1 else arguments[0]
            self.require_source(database, f"SELECT ON {database}.*")
        elif _NAMED_OBJECT_FUNCTION.match(function):
            self.named_object(function, arguments)
        else:
            raise self.unresolvable(function)

    def named_object(self, function: str, arguments: list[str | None]) -> None:
        position = _NAMED_OBJECT_POSITION.get(function.lower(), 0)
        if len(arguments) <= position or arguments[position] is None:
            raise self.unresolvable(function)
        database, name = self.qualified(arguments[position])
        privilege = "SELECT" if function.lower().startswith("joinget") else "dictGet"
        self.require(database, f"{privilege} ON {database}.{name}")

    def table_metadata(self, function: str, arguments: list[str | None]) -> None:
        if len(arguments) < 2 or arguments[0] is None or arguments[1] is None:
            raise self.unresolvable(function)
        self.require(arguments[0], f"SHOW COLUMNS ON {arguments[0]}.{arguments[1]}")

    def views(
        self,
        tables: list[tuple[str, str]],
        params: dict,
        views_seen: frozenset[str],
        missing_ok: bool = False,
    ) -> None:
        """A normal view runs with the invoker's rights (``SQL SECURITY INVOKER``, ClickHouse's default):
        its query must pass too. One with ``SQL SECURITY DEFINER`` (or NONE), and a materialized view,
        runs with its definer's rights: reading it needs only its own database's grant. A table whose
        engine reads another table (``Merge``, ``Buffer``, ``Alias``, ``Distributed``, ``Dictionary``)
        needs that one's grant too, as on a real server."""
        for database, table in sorted(set(tables)):
            name = f"{database}.{table}"
            if database in ALWAYS_READABLE or name in views_seen or name in self._cleared:
                continue
            try:
                create = self.connection.run(
                    f"SHOW CREATE TABLE {quote_identifier(database)}.{quote_identifier(table)}", "TSVRaw", {}
                ).body.decode()
            except ClickHouseError:
                if missing_ok:
                    continue  # a syntax tree's unqualified name may be a CTE's: no table, nothing read
                raise
            query = invoker_view_query(create)
            if query is not None:
                tree = self.connection.run(f"EXPLAIN QUERY TREE {query}", "TSVRaw", params).body.decode()
                self.tree(tree, params, views_seen | {name})
            engine, arguments = table_engine(create)
            if engine == "dictionary":
                self.named_object("dictionary", arguments)
            elif engine in FORWARDING_ENGINES:
                position = FORWARDING_ENGINES[engine]
                value = arguments[position] if len(arguments) > position else None
                if value is None:
                    raise self.unresolvable(engine)
                if len(arguments) > position + 1:
                    source = (value, arguments[position + 1] or "")
                else:
                    source = tuple(value.partition(".")[::2])
                self.require_source(source[0], f"SELECT ON {source[0]}.*")
                if engine != "merge":  # (merge's second argument is a regular expression)
                    self.views([source], params, views_seen | {name}, missing_ok)
            self._cleared.add(name)

    # --- the syntax tree: evaluates nothing ---------------------------------------------------------

    def syntax(self, query: str, params: dict, strict: bool, reads: tuple[str, ...] = ()) -> bool:
        """Check what ``query`` names in its syntax tree (``EXPLAIN AST``, which evaluates nothing): its
        tables (and the queries of the invoker views among them), the tables after ``IN``, the
        functions reading tables, by the same rules as the resolved tree, on their literal arguments,
        and the columns it may read of them (also of the system tables ``reads``, which it reads unnamed).
        An unqualified name of a table that does not exist may be a CTE's, and passes unless ``strict``
        (nothing resolved the query: the analyzer failed, or it is a SHOW's expression). False when the
        query cannot be parsed (then the engine's error quotes nothing but the text)."""
        try:
            ast = self.connection.run(f"EXPLAIN AST {query}", "TSVRaw", params).body.decode()
        except ClickHouseError:
            return False
        lines = indented(ast)
        tables = []
        identifiers = []
        expanding = [
            index
            for index, (_indent, text) in enumerate(lines)
            if text.split(" ", 1)[0] in _EXPANDING_NODES and not counts_rows(lines, index)
        ]
        for index, (_indent, text) in enumerate(lines):
            word, _, rest = text.partition(" ")
            name = rest.split(" (", 1)[0]
            if word == "Identifier":
                identifiers.append(name)
            in_table = word == "Identifier" and is_in_table(lines, index)
            if word == "TableIdentifier" or in_table:
                if "{" in name:
                    raise self.unresolvable("a parameter")
                database, table = self.qualified(name)
                # a name after IN may be a column, an unqualified one a CTE: only a table reads anything
                # (strict: nothing resolved it, and only a refusal tells nothing about what exists)
                may_be_nothing = not strict and (in_table or "." not in name)
                if not self.granted(database) and not (may_be_nothing and not self.exists(database, table)):
                    raise self.denied(f"SELECT ON {database}.{table}")
                tables.append((database, table))
            elif word == "Function" and index and lines[index - 1][1].startswith("TableExpression"):
                self.table_function(name, string_arguments(lines, index, AST_LITERAL))
            elif word == "Function" and _NAMED_OBJECT_FUNCTION.match(name):
                self.named_object(name, string_arguments(lines, index, AST_LITERAL))
            elif word == "Function" and _TABLE_METADATA_FUNCTION.match(name):
                self.table_metadata(name, string_arguments(lines, index, AST_LITERAL))
        # (the analyzer evaluates scalar subqueries: what they read is checked here, before it runs)
        # A `*` stands for the columns of its own SELECT's tables; in a SHOW's expressions, of those it reads.
        read = [("system", table) for table in reads]
        expanded = {self.qualified(name) for index in expanding for name in own_tables(lines, index)}
        self.other_objects_columns(tables, identifiers, expanded)
        self.other_objects_columns(read, identifiers, set(read) if expanding else set())
        self.views(tables, params, frozenset(), missing_ok=True)
        return True

    def other_objects_columns(
        self, tables: list[tuple[str, str]], columns: list[str], expanded: set[tuple[str, str]]
    ) -> None:
        """Refuse reading the columns of system ``tables`` that name other objects (``OTHER_OBJECTS_COLUMNS``):
        one of ``columns`` (bare or qualified names), or any of a table the query reads all columns of
        (``expanded``)."""
        for database, table in tables:
            hidden = OTHER_OBJECTS_COLUMNS.get(table, frozenset()) if database == "system" else frozenset()
            if hidden and (
                (database, table) in expanded
                or any(c == h or c.endswith("." + h) for c in columns for h in hidden)
            ):
                raise self.denied(f"SELECT({', '.join(sorted(hidden))}) ON system.{table}")

    def exists(self, database: str, table: str) -> bool:
        answer = self.connection.run(
            f"EXISTS TABLE {quote_identifier(database)}.{quote_identifier(table)}", "TSVRaw", {}
        ).body.decode()
        return answer.strip() == "1"
