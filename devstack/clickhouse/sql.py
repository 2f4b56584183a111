"""Just enough SQL lexing to route a request safely; parsing proper is left to the engine.

The server must decide some things *before* chDB sees the text: where an INSERT's data begins (the
data is streamed into chDB's inserter and never executed as SQL, see the guide's hazard 1), whether
the request holds more than one statement (ClickHouse refuses them over HTTP; chDB would run them
all), which output format answers, and, for the read-only user, whether the query reaches outside
the store. All of these need a lexer that knows string literals, quoted identifiers and comments, so
that a ``;`` or ``FORMAT`` inside a literal is not mistaken for syntax.

The lexer works on latin-1 text: one character per byte, so positions are byte offsets into a request
body whose tail may be binary (Native, Arrow) and must not be decoded.

This module is the entry point its users import; the parts live by role in ``sql_lexer`` (tokens),
``sql_sources`` (what reaches outside the store), ``sql_statement`` (classifying one statement),
``sql_insert`` (where an INSERT's data begins) and ``sql_masking`` (secrets masked for logs).
"""

from __future__ import annotations

from devstack.clickhouse.sql_insert import DataInsert, find_data_insert
from devstack.clickhouse.sql_lexer import (
    NUMBER,
    PARAM,
    PUNCT,
    QUOTED_ID,
    STRING,
    WORD,
    NeedMoreInput,
    Token,
    tokens,
    unquote_identifier,
    value_of,
)
from devstack.clickhouse.sql_masking import loggable
from devstack.clickhouse.sql_sources import (
    COLLECTION_FUNCTIONS,
    DATABASE_FUNCTIONS,
    EXTERNAL_FUNCTIONS,
    EXTERNAL_SOURCES,
    POSTGRES_SOURCES,
    TABLE_NAMING_FUNCTIONS,
    source_grant,
)
from devstack.clickhouse.sql_statement import (
    READ_KINDS,
    STREAMABLE_KINDS,
    Statement,
    classify,
    format_clause,
)

__all__ = [
    "COLLECTION_FUNCTIONS",
    "DATABASE_FUNCTIONS",
    "EXTERNAL_FUNCTIONS",
    "EXTERNAL_SOURCES",
    "NUMBER",
    "PARAM",
    "POSTGRES_SOURCES",
    "PUNCT",
    "QUOTED_ID",
    "READ_KINDS",
    "STREAMABLE_KINDS",
    "STRING",
    "TABLE_NAMING_FUNCTIONS",
    "WORD",
    "DataInsert",
    "NeedMoreInput",
    "Statement",
    "Token",
    "classify",
    "find_data_insert",
    "format_clause",
    "loggable",
    "source_grant",
    "tokens",
    "unquote_identifier",
    "value_of",
]
