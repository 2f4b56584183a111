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
"""

from __future__ import annotations

import itertools
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
_STRING_CONSTANT = re.compile(
    r"^CONSTANT id: \d+, constant_value: '((?:[^'\\]|\\.)*)', constant_value_type: [\w(]*String"
)
_CHECKED_KINDS = frozenset(["SELECT", "WITH", "("])
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
    check = _Check(connection, user)
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
    return prefix + _without_format(statement, top)


def _without_format(statement: sql.Statement, top: list[sql.Token]) -> str:
    """The statement's text from ``top[0]`` on; its FORMAT clause would apply to an EXPLAIN's own answer,
    so it goes (a column named "format" stays)."""
    text, begin = statement.sql, top[0].start if top else len(statement.sql)
    clause = sql.format_clause(top)
    if clause is None:
        return text[begin:]
    return text[begin : top[clause].start] + text[top[clause + 1].end :]


def _show_expressions(statement: sql.Statement) -> str | None:
    """The WHERE / LIMIT clauses of a SHOW statement (the expressions it evaluates), or None."""
    top = statement.top_level()
    start = next((index for index, t in enumerate(top) if t.is_word("WHERE", "LIMIT")), None)
    return None if start is None else _without_format(statement, top[start:])


class _Check:
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
        query = _without_format(statement, statement.top_level())
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
        lines = _indented(tree)
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
                self.table_function(function, _string_arguments(lines, index))
            else:
                function = re.search(r"function_name: (\w+)", rest).group(1)
                if _NAMED_OBJECT_FUNCTION.match(function):
                    self.named_object(function, _string_arguments(lines, index))
                elif _TABLE_METADATA_FUNCTION.match(function):
                    self.table_metadata(function, _string_arguments(lines, index))
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
                    f"SHOW CREATE TABLE {_identifier(database)}.{_identifier(table)}", "TSVRaw", {}
                ).body.decode()
            except ClickHouseError:
                if missing_ok:
                    continue  # a syntax tree's unqualified name may be a CTE's: no table, nothing read
                raise
            query = _invoker_view_query(create)
            if query is not None:
                tree = self.connection.run(f"EXPLAIN QUERY TREE {query}", "TSVRaw", params).body.decode()
                self.tree(tree, params, views_seen | {name})
            engine, arguments = _engine(create)
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
        lines = _indented(ast)
        tables = []
        identifiers = []
        expanding = [
            index
            for index, (_indent, text) in enumerate(lines)
            if text.split(" ", 1)[0] in _EXPANDING_NODES and not _counts_rows(lines, index)
        ]
        for index, (_indent, text) in enumerate(lines):
            word, _, rest = text.partition(" ")
            name = rest.split(" (", 1)[0]
            if word == "Identifier":
                identifiers.append(name)
            in_table = word == "Identifier" and _is_in_table(lines, index)
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
                self.table_function(name, _string_arguments(lines, index, _AST_LITERAL))
            elif word == "Function" and _NAMED_OBJECT_FUNCTION.match(name):
                self.named_object(name, _string_arguments(lines, index, _AST_LITERAL))
            elif word == "Function" and _TABLE_METADATA_FUNCTION.match(name):
                self.table_metadata(name, _string_arguments(lines, index, _AST_LITERAL))
        # (the analyzer evaluates scalar subqueries: what they read is checked here, before it runs)
        # A `*` stands for the columns of its own SELECT's tables; in a SHOW's expressions, of those it reads.
        read = [("system", table) for table in reads]
        expanded = {self.qualified(name) for index in expanding for name in _own_tables(lines, index)}
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
            f"EXISTS TABLE {_identifier(database)}.{_identifier(table)}", "TSVRaw", {}
        ).body.decode()
        return answer.strip() == "1"


def _indented(dump: str) -> list[tuple[int, str]]:
    """An EXPLAIN dump's lines as (indentation, text): the indentation is the tree's nesting."""
    return [(len(line) - len(line.lstrip(" ")), line.strip()) for line in dump.splitlines()]


def _counts_rows(lines: list[tuple[int, str]], index: int) -> bool:
    """Whether the AST node at ``index`` is the ``*`` of ``count(*)``, which reads no column."""
    return (
        index >= 2
        and lines[index - 1][1] == "ExpressionList (children 1)"
        and re.match(r"^Function count \(", lines[index - 2][1], re.IGNORECASE) is not None
    )


def _own_tables(lines: list[tuple[int, str]], index: int) -> list[str]:
    """The tables named in the FROM of the SELECT the AST node at ``index`` is part of (not its
    subqueries')."""
    position, depth = index, lines[index][0]
    while position > 0:
        position -= 1
        if lines[position][0] < depth:  # an ancestor
            depth = lines[position][0]
            if lines[position][1].startswith("SelectQuery "):
                break
    else:
        return []
    # SelectQuery > TablesInSelectQuery > TablesInSelectQueryElement > TableExpression > TableIdentifier
    return [
        text.split(" ", 1)[1].split(" (", 1)[0]
        for indent, text in itertools.takewhile(lambda line: line[0] > depth, lines[position + 1 :])
        if indent == depth + 4 and text.startswith("TableIdentifier ")
    ]


def _is_in_table(lines: list[tuple[int, str]], index: int) -> bool:
    """Whether the AST node at ``index`` is the right side of an ``IN`` (a table when an identifier)."""
    indent = lines[index][0]
    parent = index - 1
    while parent >= 0 and lines[parent][0] >= indent:
        parent -= 1
    function = parent - 1
    siblings = [i for i in range(parent + 1, index) if lines[i][0] == indent]
    return (
        function >= 0
        and siblings != []
        and re.match(r"^Function (global)?(not)?(null)?in \(", lines[function][1], re.IGNORECASE) is not None
    )


# A string argument as each dump writes it, and how much deeper than its function it is indented:
# EXPLAIN AST lists a function's arguments right under it, EXPLAIN QUERY TREE under its ARGUMENTS LIST.
_AST_LITERAL = (re.compile(r"^Literal '((?:[^'\\]|\\.)*)'$"), 2)
_TREE_CONSTANT = (_STRING_CONSTANT, 6)


def _string_arguments(
    lines: list[tuple[int, str]], index: int, form: tuple[re.Pattern, int] = _TREE_CONSTANT
) -> list[str | None]:
    """The arguments of the dump's function at ``index`` (``form``: the query tree's, or ``_AST_LITERAL``
    for the syntax tree's): each a string's value, or None when it is anything else (or a string with
    escapes)."""
    pattern, depth = form
    indent = lines[index][0]
    arguments = []
    for child_indent, text in lines[index + 1 :]:
        if child_indent <= indent:
            break
        if child_indent == indent + depth:
            found = pattern.match(text)
            value = found.group(1) if found else None
            arguments.append(None if value is None or "\\" in value else value)
    return arguments


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _engine(create: str) -> tuple[str | None, list[str | None]]:
    """A ``CREATE TABLE``'s engine (lower-case) and arguments: each a string's or a (compound)
    identifier's value, or None when it is anything else."""
    top = [token for token in sql.tokens(create) if token.depth <= 1]
    for index, token in enumerate(top[:-3]):
        if token.depth == 0 and token.is_word("ENGINE") and top[index + 1].text == "=":
            break
    else:
        return None, []
    engine, arguments, current = top[index + 2].text.lower(), [], []
    for token in top[index + 4 :] if top[index + 3].text == "(" else []:
        if token.depth == 0:
            break
        if token.text == ",":
            arguments.append(_argument_value(current))
            current = []
        else:
            current.append(token)
    if current:
        arguments.append(_argument_value(current))
    return engine, arguments


def _argument_value(tokens: list[sql.Token]) -> str | None:
    if len(tokens) == 1 and tokens[0].kind == sql.STRING and "\\" not in tokens[0].text:
        return tokens[0].text[1:-1].replace("''", "'")
    if tokens and all(t.kind in (sql.WORD, sql.QUOTED_ID) or t.text == "." for t in tokens):
        return "".join(sql.unquote_identifier(t) for t in tokens)
    return None


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
