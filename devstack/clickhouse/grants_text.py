"""What the checks of ``grants`` read from SQL text with the lexer (``sql``), without the engine.

A statement's text without its FORMAT clause, a ``CREATE TABLE``'s engine and arguments, the query of
a view running with the invoker's rights, and a name quoted as an identifier.
"""

from __future__ import annotations

from devstack.clickhouse import sql


def without_format(statement: sql.Statement, top: list[sql.Token]) -> str:
    """The statement's text from ``top[0]`` on; its FORMAT clause would apply to an EXPLAIN's own answer,
    so it goes (a column named "format" stays)."""
    text, begin = statement.sql, top[0].start if top else len(statement.sql)
    clause = sql.format_clause(top)
    if clause is None:
        return text[begin:]
    return text[begin : top[clause].start] + text[top[clause + 1].end :]


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def table_engine(create: str) -> tuple[str | None, list[str | None]]:
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


def invoker_view_query(create: str) -> str | None:
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
