"""The settings the read-only (BI) user may change, and how its connections report them.

On a real server the BI user has ``readonly = 1`` with ``CHANGEABLE_IN_READONLY`` constraints on
``max_execution_time`` and ``limit`` (README, "BI access"). It may change those two -- and what the engine
lets any readonly=1 user change (``limit``, ``offset``, ``format``, ...) -- and any other change is
refused with code 164 (setting a value a setting already has is no change: ClickHouse's rule). Its
sessions' ``system.settings`` report the two changeable (``readonly = 0``), and clients go by that column:
clickhouse-connect refuses, before sending anything, a setting reported readonly ("Setting
max_execution_time is readonly").

chDB cannot hold the constraint: a users file may declare ``changeable_in_readonly`` only with
``access_control_improvements.settings_constraints_replace_previous``, which chDB 26.9 does not take
(neither from a config file nor as an argument). So the server keeps it: ``engine.EngineConnection``
applies ``max_execution_time`` before readonly=1 (whose check then refuses every other change), and
:func:`reported` makes the user's reads of ``system.settings`` tell the constraint.
"""

from __future__ import annotations

from devstack.clickhouse import sql

# Grafana's ClickHouse plugin sends both with every query (clickhouse-go turns the query timeout into
# max_execution_time, the plugin passes Grafana's row limit as `limit`); each only narrows a query.
CHANGEABLE_IN_READONLY = frozenset(["max_execution_time", "limit"])

_SETTINGS_TABLE = ("system", "settings")
# The same rows and columns, the constraint told in `readonly` (0: the current user may change it).
_REPORTED_SETTINGS = (
    "(SELECT * REPLACE (if(name IN ({names}), toUInt8(0), readonly) AS readonly) FROM system.settings)"
).format(names=", ".join(f"'{name}'" for name in sorted(CHANGEABLE_IN_READONLY)))
# Words that may follow a table in FROM or JOIN; any other word there is the table's alias.
_AFTER_TABLE = frozenset(
    ["FINAL", "SAMPLE", "ARRAY", "LEFT", "RIGHT", "INNER", "OUTER", "FULL", "CROSS", "JOIN", "ANY", "ALL"]
    + ["ASOF", "SEMI", "ANTI", "GLOBAL", "PASTE", "ON", "USING", "WHERE", "PREWHERE", "GROUP", "HAVING"]
    + ["ORDER", "LIMIT", "OFFSET", "WINDOW", "QUALIFY", "UNION", "EXCEPT", "INTERSECT", "SETTINGS"]
    + ["FORMAT", "INTO", "WITH", "FETCH", "INTERPOLATE"]
)


def reported(text: str) -> str:
    """``text``, a read-only user's query, with each ``system.settings`` it reads from replaced by the
    same rows whose ``readonly`` column reports the CHANGEABLE_IN_READONLY settings changeable.

    Only queries (SELECT, WITH, a parenthesised one) are rewritten: ``DESCRIBE``/``SHOW`` of the table
    show no values. A query naming a column as ``system.settings.<column>`` is left as it is (that name
    resolves against the table only): the rows are right, only their ``readonly`` is chDB's."""
    toks = list(sql.tokens(text))
    if not toks or not (toks[0].text == "(" or toks[0].is_word("SELECT", "WITH")):
        return text
    references = []
    for index in range(1, len(toks) - 2):
        if tuple(sql.unquote_identifier(toks[i]) for i in (index, index + 2)) != _SETTINGS_TABLE:
            continue
        if toks[index + 1].text != "." or toks[index].kind == sql.PUNCT or toks[index + 2].kind == sql.PUNCT:
            continue
        following = toks[index + 3] if index + 3 < len(toks) else None
        if following is not None and following.text == ".":
            return text
        if toks[index - 1].is_word("FROM", "JOIN") or toks[index - 1].text == ",":
            references.append((toks[index], toks[index + 2], following))
    for first, last, following in reversed(references):
        named = following is not None and (
            following.kind == sql.QUOTED_ID
            or (following.kind == sql.WORD and following.text.upper() not in _AFTER_TABLE)
        )
        replacement = _REPORTED_SETTINGS if named else _REPORTED_SETTINGS + " AS settings"
        text = text[: first.start] + replacement + text[last.end :]
    return text
