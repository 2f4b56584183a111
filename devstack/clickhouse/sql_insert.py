"""Where an INSERT's data begins: the head goes to chDB's inserter and the data after it is streamed,
never executed as SQL (see the guide's hazard 1). Found as the request body arrives, before the whole
body is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from devstack.clickhouse.sql_lexer import NeedMoreInput, Token, tokens, unquote_identifier


@dataclass
class DataInsert:
    """An INSERT whose data follows the statement: ``head`` goes to chDB's inserter, data is streamed."""

    head: str
    format: str
    data_offset: int  # where the data starts in the request text


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
