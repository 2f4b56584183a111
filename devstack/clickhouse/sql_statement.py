"""One statement classified for routing: its kind, its FORMAT clause, whether another statement
follows (refused), and what it calls or reads (external functions, named collections, the system
database by a table function's arguments), for the permission checks of ``protocol`` and ``grants``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.sql_lexer import (
    PUNCT,
    QUOTED_ID,
    STRING,
    WORD,
    Token,
    tokens,
    unquote_identifier,
    value_of,
)
from devstack.clickhouse.sql_sources import (
    COLLECTION_FUNCTIONS,
    EXTERNAL_FUNCTIONS,
    EXTERNAL_SOURCES,
    POSTGRES_SOURCES,
    TABLE_NAMING_FUNCTIONS,
)

# Statements a GET request (ClickHouse's readonly=2 for GET) and the read-only user may run.
READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "("})
# Statements chDB's send_query can stream (others fail with code 36).
STREAMABLE_KINDS = frozenset({"SELECT", "WITH", "("})


# ``currentDatabase()`` and its aliases: as a table function's database, the request's current one.
_CURRENT_DATABASE_FUNCTIONS = frozenset(["currentdatabase", "current_database", "database", "schema"])
# Keys of a dictionary's CLICKHOUSE source that send it to a server, as a user, or to a named
# collection's (which may hold both): without any, the source reads this server's own tables.
_REMOTE_SOURCE_KEYS = frozenset(["HOST", "PORT", "USER", "PASSWORD", "NAME", "SECURE"])
# What in a local source's strings may read the system database (named_collections lists every
# collection's keys); a backslash may spell either in a quoted name of a QUERY.
_SYSTEM_TEXT_RE = re.compile(r"\bsystem\b|named_collections|\\", re.I)


# Word pairs after which a name followed by ``(`` is a table (or dictionary) and its columns, not a
# call; None: any word or none. Not ``DESCRIBE TABLE url(...)``, which calls the function. A
# projection or an index is named so too, in ALTER (``ADD PROJECTION file (SELECT ...)``, ``ADD INDEX
# url (url) TYPE ...``) and among a CREATE TABLE's columns (after ``,`` or ``(``); ``IF NOT EXISTS``
# is the EXISTS pair.
_NAMES_A_TABLE = {
    "INTO": None,
    "DICTIONARY": None,
    "EXISTS": frozenset(["NOT"]),
    "TABLE": frozenset(["INTO", "CREATE", "REPLACE", "TEMPORARY", "ATTACH"]),
    "PROJECTION": frozenset(["ADD", ",", "("]),
    "INDEX": frozenset(["ADD", "CREATE", ",", "("]),
}


@dataclass
class Statement:
    """One classified SQL statement, ready to route."""

    sql: str  # text to execute (for data inserts: the head without FORMAT and data)
    kind: str  # first keyword, upper-case; "(" for a parenthesised SELECT
    format: str | None = None  # FORMAT clause: output format, or the input format of a data insert
    tokens: list[Token] = field(default_factory=list)

    @property
    def is_read(self) -> bool:
        return self.kind in READ_KINDS

    @property
    def streamable(self) -> bool:
        return self.kind in STREAMABLE_KINDS and not any(t.is_word("INTO") for t in self.top_level())

    def top_level(self) -> list[Token]:
        return [t for t in self.tokens if t.depth == 0]

    def external_function(self) -> str | None:
        """The first file/network-reaching function called, if any (``called``)."""
        return self.called(EXTERNAL_FUNCTIONS)

    def called(self, names: frozenset[str]) -> str | None:
        """The first of the functions (or engines) ``names`` (lower-case) called, if any.

        ClickHouse also takes a function name in quotes (`` `file`(...) ``, ``"file"(...)``), where
        escape sequences may spell it (a backslash and a letter's hex code): a quoted name is
        compared unquoted, and one with a backslash in it counts as called (no function a reader
        needs is written so)."""
        for position in self._calls():
            current = self.tokens[position]
            name = unquote_identifier(current)
            if name.lower() == "clickhouse" and self._local_clickhouse_source(position):
                continue
            if name.lower() in names or (current.kind == QUOTED_ID and "\\" in name):
                return name
        return None

    def _local_clickhouse_source(self, position: int) -> bool:
        """Whether the dictionary source ``CLICKHOUSE(...)`` at ``position`` reads this server's own
        tables, as the querying user and not in ``system``: no HOST/PORT/USER/PASSWORD (nor a
        collection's NAME) key, and no string or name of it naming ``system``, ``named_collections``
        or (a QUERY) calling what reaches outside or reads a database by pattern. dbt-clickhouse's
        dictionaries without credentials (COMPATIBILITY.md) are such sources."""
        inside = [token for argument in self.arguments(position) for token in argument]
        for token in inside:
            if token.kind in (WORD, QUOTED_ID) and value_of(token).upper() in _REMOTE_SOURCE_KEYS:
                return False
            if token.kind in (WORD, STRING, QUOTED_ID) and _SYSTEM_TEXT_RE.search(value_of(token)):
                return False
            if token.kind in (STRING, QUOTED_ID) and not _reads_only_this_store(value_of(token)):
                return False
        return True

    def _calls(self) -> Iterator[int]:
        """The position in ``tokens`` of each called name (a word or quoted name before ``(``).

        Not a table named so, followed by its columns: qualified (``db.url (id)``; ClickHouse has no
        qualified functions) or after the words naming a table (``INSERT INTO url (id)``, ``CREATE
        TABLE IF NOT EXISTS url (...)``); ``INTO FUNCTION url(...)``, ``FROM url(...)`` are calls."""
        for position, (current, following) in enumerate(zip(self.tokens, self.tokens[1:], strict=False)):
            if following.text != "(" or current.kind not in (WORD, QUOTED_ID):
                continue
            if not self._names_a_table(position):
                yield position

    def _names_a_table(self, position: int) -> bool:
        previous = self.tokens[position - 1] if position else None
        if previous is None or previous.text == ".":
            return previous is not None
        if previous.kind != WORD or previous.text.upper() not in _NAMES_A_TABLE:
            return False
        words = _NAMES_A_TABLE[previous.text.upper()]
        return words is None or (
            position > 1
            and self.tokens[position - 2].kind in (WORD, PUNCT)
            and self.tokens[position - 2].text.upper() in words
        )

    def arguments(self, position: int) -> list[list[Token]]:
        """The arguments of the call whose name is at ``position`` in ``tokens``, each as its tokens."""
        opening = self.tokens[position + 1]
        found: list[list[Token]] = [[]]
        for token in self.tokens[position + 2 :]:
            if token.depth <= opening.depth:
                break
            if token.depth == opening.depth + 1 and token.text == ",":
                found.append([])
            else:
                found[-1].append(token)
        return [argument for argument in found if argument]

    def named_collection_use(self) -> str | None:
        """What of named collections the statement touches, if anything: CREATE/ALTER/DROP NAMED
        COLLECTION, the table ``system.named_collections`` (``reads_named_collections``), or a
        collection passed to a function or engine (``COLLECTION_FUNCTIONS``), which a bare name as
        first argument is (``remote(nc, ...)``, ``SOURCE(MYSQL(NAME nc))``)."""
        for first, second in zip(self.tokens, self.tokens[1:], strict=False):
            if first.is_word("NAMED") and second.is_word("COLLECTION", "COLLECTIONS"):
                return "NAMED COLLECTION statements"
        table = self.reads_named_collections()
        if table:
            return table
        for position in self._calls():
            name = unquote_identifier(self.tokens[position])
            if name.lower() not in COLLECTION_FUNCTIONS:
                continue
            argument = self.tokens[position + 2 : position + 5]
            if argument and argument[0].is_word("NAME"):
                argument = argument[1:]
            if (
                argument
                and argument[0].kind in (WORD, QUOTED_ID)
                and (len(argument) == 1 or argument[1].text in (",", ")"))
            ):
                return f"the named collection {unquote_identifier(argument[0])} in {name}()"
        return None

    def reads_named_collections(self) -> str | None:
        """How the statement names the table ``system.named_collections`` (every collection's name and
        keys), if it does: qualified by ``system``, or unqualified (the current database may be
        ``system``: a session's ``USE`` is not known here) unless it is an alias being defined (``AS
        named_collections``). A string (``where status = 'named_collections'``) is no table, nor is
        another database's table; table functions reading it by strings: ``reads_system_by_function``."""
        for position, token in enumerate(self.tokens):
            if token.kind not in (WORD, QUOTED_ID) or value_of(token).lower() != "named_collections":
                continue
            previous = self.tokens[position - 1] if position else None
            if previous is not None and previous.text == ".":
                qualifier = self.tokens[position - 2] if position > 1 else None
                if qualifier is not None and value_of(qualifier).lower() != "system":
                    continue  # another database's table, or a column of a table's alias
            elif previous is not None and previous.is_word("AS"):
                continue
            return "system.named_collections"
        return None

    def reads_system_by_function(self, current_database: str | None) -> str | None:
        """A table function reading the ``system`` database by its arguments (``merge('system', ...)``,
        ``loop('system', ...)``), or one whose database it cannot tell (an expression, a pattern):
        such a read lists ``system.named_collections``. ``currentDatabase()`` and ``merge('^t')``'s
        one argument read ``current_database`` (None: not known, as a session's after ``USE``)."""
        for position in self._calls():
            name = unquote_identifier(self.tokens[position])
            if name.lower() in TABLE_NAMING_FUNCTIONS and not self._reads_a_known_database(
                name.lower(), position, current_database
            ):
                return f"{name}() over the system database or one it cannot tell"
        return None

    def _reads_a_known_database(self, name: str, position: int, current: str | None) -> bool:
        """Whether the table function at ``position`` provably reads a database other than ``system``."""
        arguments = self.arguments(position)
        if name == "loop" and len(arguments) == 1:
            [argument] = arguments
            if len(argument) == 1 and argument[0].kind == STRING:  # 'db.table' or 'table'
                database, dot, table = value_of(argument[0]).rpartition(".")
                if dot:
                    return database.lower() != "system"
                return table.lower() != "named_collections" and _not_system(current)
            # a name (checked above as a name), or a table function (checked as a call of its own)
            return all(t.kind in (WORD, QUOTED_ID) or t.text == "." for t in argument) or (
                len(argument) > 1 and argument[1].text == "(" and argument[-1].text == ")"
            )
        if len(arguments) < 2:  # merge('^t'): the current database
            return name == "merge" and len(arguments) == 1 and _not_system(current)
        database = arguments[0]
        if (
            len(database) == 3
            and database[0].kind == WORD
            and database[0].text.lower() in _CURRENT_DATABASE_FUNCTIONS
            and [token.text for token in database[1:]] == ["(", ")"]
        ):
            return _not_system(current)
        return (
            len(database) == 1
            and database[0].kind in (STRING, WORD, QUOTED_ID)
            and value_of(database[0]).lower() != "system"
        )

    def writes_outfile(self) -> bool:
        top = self.top_level()
        return any(a.is_word("INTO") and b.is_word("OUTFILE") for a, b in zip(top, top[1:], strict=False))

    def set_names(self) -> list[str]:
        """Setting names assigned by a ``SET a = 1, b = 'x'`` statement (empty for SET ROLE etc.)."""
        if self.kind != "SET":
            return []
        top = self.top_level()[1:]
        return [
            unquote_identifier(name)
            for index, (name, equals) in enumerate(zip(top, top[1:], strict=False))
            if equals.text == "=" and (index == 0 or top[index - 1].text == ",")
        ]


def _not_system(database: str | None) -> bool:
    return database is not None and database.lower() != "system"


def _reads_only_this_store(text: str) -> bool:
    """Whether a string of a local dictionary source, run as a QUERY, calls nothing reaching outside
    the store or reading a database by its arguments (a plain name or value is such a string)."""
    try:
        inner = classify(text)
    except ClickHouseError:
        return False
    if inner.named_collection_use():
        return False
    return not inner.called(EXTERNAL_SOURCES | POSTGRES_SOURCES | TABLE_NAMING_FUNCTIONS)


def _first_keyword(toks: list[Token]) -> str:
    if not toks:
        return ""
    first = toks[0]
    return "(" if first.text == "(" else first.text.upper()


def _multi_statement_check(text: str, toks: list[Token]) -> int:
    """End of the single statement in ``text``; raise ClickHouse's error 62 if another one follows."""
    for index, token in enumerate(toks):
        if token.text == ";" and token.depth == 0:
            if index + 1 < len(toks):
                raise ClickHouseError(
                    62,
                    "Syntax error (Multi-statements are not allowed): failed at position "
                    f"{token.start + 1} (end of query): {text[token.start : token.start + 40]!r}",
                )
            return token.start
    return len(text)


def classify(text: str) -> Statement:
    """Classify one complete statement (not a data insert), refusing multi-statements."""
    toks = list(tokens(text))
    end = _multi_statement_check(text, toks)
    toks = [t for t in toks if t.start < end]
    top = [t for t in toks if t.depth == 0]
    clause = format_clause(top)
    output_format = None if clause is None else unquote_identifier(top[clause + 1])
    return Statement(sql=text[:end], kind=_first_keyword(toks), format=output_format, tokens=toks)


# Words after which an expression follows: a ``format`` there is a column or an alias, not the clause.
_EXPRESSION_FOLLOWS = frozenset(
    ["SELECT", "DISTINCT", "BY", "AS", "WHERE", "PREWHERE", "HAVING", "QUALIFY", "AND", "OR", "NOT", "ON"]
    + ["USING", "WHEN", "THEN", "ELSE", "IN", "LIKE", "ILIKE", "BETWEEN", "LIMIT", "OFFSET", "INTERVAL"]
)


def format_clause(top: list[Token]) -> int | None:
    """The index in ``top`` (a statement's top-level tokens) of the FORMAT keyword of its FORMAT clause.

    As in ClickHouse's grammar the clause follows the whole query: ``FORMAT <name>``, then nothing or
    SETTINGS. A column or alias named ``format`` (``SELECT format FROM t``, ``ORDER BY format DESC``)
    is none: the word is followed by more than a name, or stands where an expression is expected."""
    for index in range(1, len(top) - 1):
        keyword, name, after = top[index], top[index + 1], top[index + 2 : index + 3]
        if not (keyword.is_word("FORMAT") and name.kind in (WORD, QUOTED_ID)):
            continue
        if after and not after[0].is_word("SETTINGS"):
            continue
        previous = top[index - 1]
        if previous.is_word(*_EXPRESSION_FOLLOWS) or (previous.kind == PUNCT and previous.text not in ")]}*"):
            continue
        return index
    return None
