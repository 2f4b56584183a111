"""The SQL lexer: a request's text as tokens that know string literals, quoted identifiers, heredocs
and comments, each with its bracket depth, so that a ``;`` or ``FORMAT`` inside a literal is not
mistaken for syntax. It works on latin-1 text (one character per byte, so positions are byte
offsets) and can stop early or ask for more input, as a request body streams in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD, STRING, QUOTED_ID, NUMBER, PUNCT, PARAM = "word", "string", "quoted_id", "number", "punct", "param"

_WORD_RE = re.compile(r"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_.]*")
_SPACE_RE = re.compile(r"\s+")
_HEREDOC_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


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
