"""Just enough SQL lexing to route a request safely; parsing proper is left to the engine.

The server must decide some things *before* chDB sees the text: where an INSERT's data begins (the
data is streamed into chDB's inserter and never executed as SQL, see the guide's hazard 1), whether
the request holds more than one statement (ClickHouse refuses them over HTTP; chDB would run them
all), which output format answers, and, for the read-only user, whether the query reaches outside
the store. All of these need a lexer that knows string literals, quoted identifiers and comments, so
that a ``;`` or ``FORMAT`` inside a literal is not mistaken for syntax.

The lexer works on latin-1 text: one character per byte, so positions are byte offsets into a request
body whose tail may be binary (Native, Arrow) and must not be decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from devstack.clickhouse.errors import ClickHouseError

WORD, STRING, QUOTED_ID, NUMBER, PUNCT, PARAM = "word", "string", "quoted_id", "number", "punct", "param"

_WORD_RE = re.compile(r"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_.]*")
_SPACE_RE = re.compile(r"\s+")
_HEREDOC_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")

# Statements a GET request (ClickHouse's readonly=2 for GET) and the read-only user may run.
READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "("})
# Statements chDB's send_query can stream (others fail with code 36).
STREAMABLE_KINDS = frozenset({"SELECT", "WITH", "("})

# Table functions (and the file() scalar function) that read host files or reach other servers. The
# read-only BI user must not use them; chDB's readonly=1 blocks some but not all of these paths. Not
# input(), which reads only the request's own body (``INSERT ... SELECT ... FROM input(...) FORMAT``).
EXTERNAL_FUNCTIONS = frozenset(
    name.lower()
    for name in [
        "file",
        "fileCluster",
        "url",
        "urlCluster",
        "s3",
        "s3Cluster",
        "gcs",
        "oss",
        "cosn",
        "azureBlobStorage",
        "azureBlobStorageCluster",
        "hdfs",
        "hdfsCluster",
        "remote",
        "remoteSecure",
        "cluster",
        "clusterAllReplicas",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "deltaLake",
        "deltaLakeCluster",
        "deltaLakeS3",
        "deltaLakeAzure",
        "iceberg",
        "icebergS3",
        "icebergAzure",
        "icebergHDFS",
        "icebergLocal",
        "icebergCluster",
        "icebergS3Cluster",
        "hudi",
        "hudiCluster",
        "hive",
        "arrowFlight",
        "arrowflight",
        "ytsaurus",
        "paimon",
        "prometheusQuery",
        "timeSeriesData",
    ]
)


# What reaches PostgreSQL: the table function and the PostgreSQL engine (same word), the
# MaterializedPostgreSQL table and database engine, and a dictionary's SOURCE(POSTGRESQL(...)). Only a
# user allowed the PostgreSQL source (``users.User.postgres_source``: replication's) may use them.
POSTGRES_SOURCES = frozenset(["postgresql", "materializedpostgresql"])
# Functions and engines that take a named collection as their first argument (``remote(nc, ...)``,
# ``ENGINE = MySQL(nc)``): with one, the collection's credentials are used, and its keys may be
# overridden (``host = ...``, ClickHouse's default), which sends them elsewhere. Not ``cluster()``,
# whose first argument names a cluster, nor file()/input()/executable(), which take no collection.
# Engines and dictionary sources (``SOURCE(CLICKHOUSE(NAME nc host ...))``) that are no function too.
COLLECTION_FUNCTIONS = (
    (EXTERNAL_FUNCTIONS - {"file", "filecluster", "input", "executable", "cluster", "clusterallreplicas"})
    | POSTGRES_SOURCES
    | {"materializedmysql", "kafka", "nats", "rabbitmq", "clickhouse", "http", "cassandra"}
)
# What reaches outside the store: the functions above, and engines and dictionary sources that are
# no table function. A dictionary's SOURCE(HTTP(URL ...)) fetches a URL; SOURCE(CLICKHOUSE(...))
# reads another server, or this one's tables by strings (``TABLE 'named_collections' DB 'system'``):
# counted only when it is not a local source (``Statement._local_clickhouse_source``).
EXTERNAL_SOURCES = EXTERNAL_FUNCTIONS | {
    "http",
    "clickhouse",
    "cassandra",
    "kafka",
    "nats",
    "rabbitmq",
    "materializedmysql",
    "s3queue",
    "azurequeue",
    "executablepool",
    "executable_pool",
}
# Table functions whose first argument is the database they read (all of it, at most; ``grants``), and
# loop(), which reads one table named by its arguments (also as strings: ``loop('system', 't')``).
DATABASE_FUNCTIONS = frozenset(["merge", "mergetreeindex", "mergetreeprojection"])
TABLE_NAMING_FUNCTIONS = DATABASE_FUNCTIONS | {"loop"}
# ``currentDatabase()`` and its aliases: as a table function's database, the request's current one.
_CURRENT_DATABASE_FUNCTIONS = frozenset(["currentdatabase", "current_database", "database", "schema"])
# Keys of a dictionary's CLICKHOUSE source that send it to a server, as a user, or to a named
# collection's (which may hold both): without any, the source reads this server's own tables.
_REMOTE_SOURCE_KEYS = frozenset(["HOST", "PORT", "USER", "PASSWORD", "NAME", "SECURE"])
# What in a local source's strings may read the system database (named_collections lists every
# collection's keys); a backslash may spell either in a quoted name of a QUERY.
_SYSTEM_TEXT_RE = re.compile(r"\bsystem\b|named_collections|\\", re.I)
# The grant a real server asks for an external function (its SOURCES privileges, ``READ ON <source>``),
# by the start of the function's name, most specific first.
_SOURCE_GRANTS = (
    ("icebergazure", "AZURE"),
    ("icebergh", "HDFS"),
    ("icebergl", "FILE"),
    ("deltalakeazure", "AZURE"),
    ("materializedmysql", "MYSQL"),
    ("file", "FILE"),
    ("url", "URL"),
    ("http", "URL"),
    ("clickhouse", "REMOTE"),
    ("kafka", "KAFKA"),
    ("nats", "NATS"),
    ("rabbitmq", "RABBITMQ"),
    ("remote", "REMOTE"),
    ("cluster", "REMOTE"),
    ("azure", "AZURE"),
    ("hdfs", "HDFS"),
    ("mysql", "MYSQL"),
    ("postgresql", "POSTGRES"),
    ("mongodb", "MONGO"),
    ("redis", "REDIS"),
    ("sqlite", "SQLITE"),
    ("jdbc", "JDBC"),
    ("odbc", "ODBC"),
    ("hive", "HIVE"),
    ("s3", "S3"),
    ("gcs", "S3"),
    ("oss", "S3"),
    ("cosn", "S3"),
    ("deltalake", "S3"),
    ("iceberg", "S3"),
    ("hudi", "S3"),
)


def source_grant(function: str) -> str:
    """``READ ON <source>`` for an external function; SOURCES (all of them) where no one source fits."""
    name = function.lower()
    return next(
        (f"READ ON {source}" for start, source in _SOURCE_GRANTS if name.startswith(start)), "SOURCES"
    )


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


class NeedMoreInput(Exception):
    """The text ends inside a token: more of the request body is needed to lex it."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int
    depth: int  # bracket nesting depth at the token; 0 = top level of the statement

    def is_word(self, *words: str) -> bool:
        return self.kind == WORD and self.text.upper() in words


def _skip_block_comment(text: str, pos: int, complete: bool) -> int:
    depth = 0
    while pos < len(text):
        if text.startswith("/*", pos):
            depth += 1
            pos += 2
        elif text.startswith("*/", pos):
            depth -= 1
            pos += 2
            if depth == 0:
                return pos
        else:
            pos += 1
    if not complete:
        raise NeedMoreInput
    return pos


def _skip_quoted(text: str, pos: int, quote: str, complete: bool) -> int:
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            pos += 2
        elif char == quote:
            if text.startswith(quote * 2, pos):  # doubled quote inside the literal
                pos += 2
            else:
                return pos + 1
        else:
            pos += 1
    if not complete:
        raise NeedMoreInput
    return len(text)


def tokens(text: str, complete: bool = True, stop=None):
    """Yield tokens of ``text``. With ``complete=False`` a token cut by the end raises NeedMoreInput.

    ``stop(token)`` returning True ends the scan early: the caller found what it needed and the rest
    may be data rather than SQL.
    """
    pos, depth, length = 0, 0, len(text)
    while pos < length:
        char = text[pos]
        if char.isspace():
            pos = _SPACE_RE.match(text, pos).end()
            continue
        if text.startswith("--", pos) or char == "#":
            newline = text.find("\n", pos)
            if newline < 0:
                if not complete:
                    raise NeedMoreInput
                return
            pos = newline + 1
            continue
        if text.startswith("/*", pos):
            pos = _skip_block_comment(text, pos, complete)
            continue
        start = pos
        if char == "'":
            kind, pos = STRING, _skip_quoted(text, pos, "'", complete)
        elif char in '"`':
            kind, pos = QUOTED_ID, _skip_quoted(text, pos, char, complete)
        elif char == "$" and (heredoc := _HEREDOC_RE.match(text, pos)):
            closing = text.find(heredoc.group(0), heredoc.end())
            if closing < 0 and not complete:
                raise NeedMoreInput
            kind, pos = STRING, (length if closing < 0 else closing + len(heredoc.group(0)))
        elif char == "{":
            # Query parameter placeholder {name:Type}; braces also open map literals.
            kind, pos = PARAM, pos + 1
        elif word := _WORD_RE.match(text, pos):
            kind, pos = WORD, word.end()
        elif number := _NUMBER_RE.match(text, pos):
            kind, pos = NUMBER, number.end()
        else:
            kind, pos = PUNCT, pos + 1
        if pos == length and not complete and kind in (WORD, NUMBER):
            raise NeedMoreInput  # a word at the very end may continue in the next chunk
        if char in ")]}":
            depth = max(depth - 1, 0)
        token = Token(kind, text[start:pos], start, pos, depth)
        if char in "([{":
            depth += 1
        yield token
        if stop is not None and stop(token):
            return


def unquote_identifier(token: Token) -> str:
    if token.kind == QUOTED_ID:
        return token.text[1:-1].replace(token.text[0] * 2, token.text[0])
    return token.text


_ESCAPE_RE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.S)
_ESCAPED = {"b": "\b", "f": "\f", "r": "\r", "n": "\n", "t": "\t", "0": "\0", "a": "\a", "v": "\v"}


def value_of(token: Token) -> str:
    """What a name or a string literal means to ClickHouse: unquoted, its escape sequences decoded
    (a backquoted named\\x5fcollections is named_collections); a heredoc ($$...$$) has no escapes."""
    if token.kind == STRING and token.text.startswith("$"):
        tag = _HEREDOC_RE.match(token.text).group(0)
        return token.text[len(tag) : -len(tag)]
    if token.kind not in (STRING, QUOTED_ID):
        return token.text
    quote = token.text[0]
    body = token.text[1:-1].replace(quote * 2, quote)

    def decode(match: re.Match) -> str:
        escaped = match.group(1)
        return chr(int(escaped[1:], 16)) if len(escaped) == 3 else _ESCAPED.get(escaped, escaped)

    return _ESCAPE_RE.sub(decode, body)


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


@dataclass
class DataInsert:
    """An INSERT whose data follows the statement: ``head`` goes to chDB's inserter, data is streamed."""

    head: str
    format: str
    data_offset: int  # where the data starts in the request text


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


def find_data_insert(text: str, complete: bool) -> DataInsert | None:
    """Locate the data of an ``INSERT ... FORMAT x <data>`` or ``INSERT ... VALUES <data>`` statement.

    Returns None when the text is not such an INSERT (INSERT ... SELECT included). Raises NeedMoreInput
    when the head is not complete yet. Data starts after the format name, its trailing blanks and at
    most one newline -- the rule ClickHouse's own INSERT parser applies.
    """
    found: list[Token] = []

    def decisive(token: Token) -> bool:
        found.append(token)
        if len(found) == 1:
            return not token.is_word("INSERT")
        if token.depth != 0:
            return False
        if token.is_word("SELECT", "WITH", "VALUES"):
            return True
        return len(found) >= 3 and found[-2].is_word("FORMAT") and found[-2].depth == 0

    for _ in tokens(text, complete, stop=decisive):
        pass
    if not found or not found[0].is_word("INSERT"):
        return None
    last = found[-1]
    if last.is_word("VALUES"):
        return DataInsert(head=text[: last.start], format="Values", data_offset=last.end)
    if len(found) >= 3 and found[-2].is_word("FORMAT") and found[-2].depth == 0:
        format_token = last
        if not complete and format_token.end == len(text):
            raise NeedMoreInput
        pos = format_token.end
        while pos < len(text) and text[pos] in " \t\f":
            pos += 1
        if pos < len(text) and text[pos] == "\r":
            pos += 1
        if pos < len(text) and text[pos] == "\n":
            pos += 1
        return DataInsert(
            head=text[: found[-2].start], format=unquote_identifier(format_token), data_offset=pos
        )
    if not complete and not last.is_word("SELECT", "WITH"):
        raise NeedMoreInput
    return None


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


_SECRET_PATTERNS = (
    # key = 'value' pairs in NAMED COLLECTION / SETTINGS / engine arguments
    re.compile(r"(\b(?:password|secret_access_key|access_key_id|token)\b\s*=?\s*)'(?:[^'\\]|\\.)*'", re.I),
    # CREATE/ALTER USER ... IDENTIFIED [WITH method] BY 'secret'
    re.compile(r"(\bIDENTIFIED\b(?:\s+WITH\s+\w+)?\s+BY\s+)'(?:[^'\\]|\\.)*'", re.I),
    # postgresql('host:port', 'db', 'table', 'user', 'password' ...) and mysql(...) positional form
    re.compile(r"(\b(?:postgresql|mysql)\s*\(\s*(?:'(?:[^'\\]|\\.)*'\s*,\s*){4})'(?:[^'\\]|\\.)*'", re.I),
)


def loggable(text: str) -> str:
    """Query text with secrets masked, as ClickHouse masks them in its own logs: the query log must
    never carry the PostgreSQL password of a named collection or a table function."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1'[HIDDEN]'", text)
    return text
