"""Reading the engine's ``EXPLAIN AST`` and ``EXPLAIN QUERY TREE`` dumps, for the checks of ``grants_check``.

A dump's lines as (indentation, text), the string arguments of one of its functions, the tables of a
SELECT's FROM, whether a node is the right side of an ``IN`` or the ``*`` of ``count(*)``.
"""

from __future__ import annotations

import itertools
import re

_STRING_CONSTANT = re.compile(
    r"^CONSTANT id: \d+, constant_value: '((?:[^'\\]|\\.)*)', constant_value_type: [\w(]*String"
)


def indented(dump: str) -> list[tuple[int, str]]:
    """An EXPLAIN dump's lines as (indentation, text): the indentation is the tree's nesting."""
    return [(len(line) - len(line.lstrip(" ")), line.strip()) for line in dump.splitlines()]


def counts_rows(lines: list[tuple[int, str]], index: int) -> bool:
    """Whether the AST node at ``index`` is the ``*`` of ``count(*)``, which reads no column."""
    return (
        index >= 2
        and lines[index - 1][1] == "ExpressionList (children 1)"
        and re.match(r"^Function count \(", lines[index - 2][1], re.IGNORECASE) is not None
    )


def own_tables(lines: list[tuple[int, str]], index: int) -> list[str]:
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


def is_in_table(lines: list[tuple[int, str]], index: int) -> bool:
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
AST_LITERAL = (re.compile(r"^Literal '((?:[^'\\]|\\.)*)'$"), 2)
_TREE_CONSTANT = (_STRING_CONSTANT, 6)


def string_arguments(
    lines: list[tuple[int, str]], index: int, form: tuple[re.Pattern, int] = _TREE_CONSTANT
) -> list[str | None]:
    """The arguments of the dump's function at ``index`` (``form``: the query tree's, or ``AST_LITERAL``
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
