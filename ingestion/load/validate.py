"""The landing contract as great-expectations expectations, evaluated chunk by chunk.

Each rule of :mod:`ingestion.contracts` (presence, NOT NULL, type, closed set, range, pattern,
length) becomes one GE expectation, plus the limits PostgreSQL itself would enforce and the
contract does not state (varchar length, DECIMAL precision, INTEGER range), read from the
catalog so a row can never make the load's transaction fail. A DECIMAL's scale is one of them: in
a money column (``Column.exact``) a value with more decimals than the column keeps is quarantined,
where PostgreSQL would round it without a word; any other decimal (a ratio, a score) is rounded as
PostgreSQL stores it, and its range and storage limit judge the value as stored. GE runs in an
ephemeral context on a pandas frame whose index is the file's row numbers, with
``result_format=COMPLETE``: each expectation's ``unexpected_index_list`` says exactly which rows
broke it.

Checks GE cannot express vectorised are done in these modules and reported the same way: calendar validity
(``2025-02-30`` matches the date pattern), JSON as jsonb takes it (parsed once per distinct value)
NUL characters, which PostgreSQL's text cannot hold, and digits beyond a money column's scale
(read exactly where a value has an exponent). References (business keys existing in PostgreSQL or
in the same file) are checked by the loader with SQL joins, against the data itself rather than a
copy of it.

This module is the entry point: :class:`ChunkValidator` (one table's rules run chunk by chunk),
:class:`Verdict` and :func:`rule_words`; it re-exports the public names of its parts, split by role:

``validate_patterns``      the shapes of each type's landing text, PostgreSQL's storage limits;
``validate_numbers``       numbers as numeric reads, rounds and stores them;
``validate_calendar_json`` calendar validity and JSON as jsonb takes it;
``validate_rules``         contract columns -> rules (GE expectation or custom check, reason words).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ingestion.contracts import CONTRACTS
from ingestion.load.validate_numbers import as_float, as_stored, unreadable_as_infinite
from ingestion.load.validate_patterns import (
    BOOL_PATTERN,
    DATE_PATTERN,
    DECIMAL_PATTERN,
    INT4_RANGE,
    INT_PATTERN,
    NUMERIC_MAX_SCALE,
    NUMERIC_MAX_WHOLE_DIGITS,
    TIMESTAMP_PATTERN,
)
from ingestion.load.validate_rules import (
    DbColumn,
    Rule,
    great_expectations_module,
    nul_rule,
    numeric_name,
    required_rule,
    rounding_scale,
    rules_for_column,
    unknown_keys_rule,
)

__all__ = [
    "BOOL_PATTERN",
    "DATE_PATTERN",
    "DECIMAL_PATTERN",
    "INT4_RANGE",
    "INT_PATTERN",
    "NUMERIC_MAX_SCALE",
    "NUMERIC_MAX_WHOLE_DIGITS",
    "TIMESTAMP_PATTERN",
    "ChunkValidator",
    "DbColumn",
    "Rule",
    "Verdict",
    "rule_words",
]


@dataclass
class Verdict:
    """Failures of one chunk: row number -> [(rule id, reason)], in rule order."""

    failures: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, row: int, rule: str, reason: str) -> None:
        self.failures.setdefault(row, []).append((rule, reason))


class ChunkValidator:
    """The rules of one table, compiled once into a GE suite, applied to each chunk of a file.

    Also keeps the per-expectation totals of the whole file (``summary()``), which the ledger
    stores and Dagster shows as the asset check's metadata.
    """

    def __init__(self, table: str, db_columns: dict[str, DbColumn] | None = None):
        self.contract = CONTRACTS[table]
        db_columns = db_columns or {}
        self.rules: list[Rule] = []
        for column in self.contract.columns:
            self.rules.extend(rules_for_column(column, db_columns.get(column.name)))
        for reference in self.contract.references:
            name = reference.landing_column
            self.rules.append(nul_rule(name))
            if reference.required:
                self.rules.append(required_rule(name))
        self.rules.append(unknown_keys_rule(table))
        self.as_numeric = [c.name for c in self.contract.columns if c.kind in ("int", "decimal")]
        # Required text (a business key of a reference is text too): only whitespace is empty.
        self._blank_is_empty = [c.name for c in self.contract.columns if c.required and c.kind == "text"] + [
            r.landing_column for r in self.contract.references if r.required
        ]
        self.beyond_scale = {r.column: r.custom for r in self.rules if r.id.startswith("scale:")}
        self._rounding_scales = {
            c.name: scale
            for c in self.contract.columns
            if (scale := rounding_scale(c, db_columns.get(c.name))) is not None
        }
        self._by_expectation = [r for r in self.rules if r.expectation is not None]
        self._custom = [r for r in self.rules if r.custom is not None]
        self._ge_columns = list(dict.fromkeys(r.column for r in self._by_expectation))
        self._unexpected: Counter[str] = Counter()
        self.rows_checked = 0
        self._suite, self._batch_definition = self._compile()

    def _compile(self):
        gx = great_expectations_module()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_pandas(f"landing_{self.contract.table}")
        batch_definition = source.add_dataframe_asset("chunk").add_batch_definition_whole_dataframe("chunk")
        # Column presence is the reader's check (a file without the contract's columns fails as a
        # whole, with the missing names); the suite holds the per-row rules.
        suite = gx.ExpectationSuite(name=f"landing_contract_{self.contract.table}")
        for rule in self._by_expectation:
            suite.add_expectation(rule.expectation)
        return context.suites.add(suite), batch_definition

    def _frame_for_ge(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Only the columns GE checks, plus a numeric twin of each number column for range checks.

        Narrow on purpose: GE filters its input frame once per expectation, so a wide frame (a
        conversation's content) would be copied a dozen times per chunk for nothing.

        A required text value of only whitespace is null here, so that it fails the required rule
        alone (not also the pattern or the closed set), as an empty one does.
        """
        typed = {}
        for name in self.as_numeric:
            if self.contract.column(name).kind == "int":
                typed[numeric_name(name)] = as_float(frame[name], INT_PATTERN)
            else:
                numbers = unreadable_as_infinite(frame[name], as_float(frame[name], DECIMAL_PATTERN))
                if name in self.beyond_scale:
                    # Never stored (the scale rule quarantines them): out of the ranges' sight, so
                    # that they read only exact values (1e-400 is no float > 0: 'not > 0' is false).
                    numbers = numbers.mask(self.beyond_scale[name](frame[name]))
                elif name in self._rounding_scales:
                    numbers = as_stored(frame[name], numbers, self._rounding_scales[name])
                typed[numeric_name(name)] = numbers
        checked = frame[self._ge_columns]
        blanks = {}
        for name in self._blank_is_empty:
            blank = checked[name].str.isspace().fillna(False).astype(bool)
            if blank.any():
                blanks[name] = checked[name].mask(blank)
        if blanks:
            checked = checked.assign(**blanks)
        return pd.concat([checked, pd.DataFrame(typed, index=frame.index)], axis=1) if typed else checked

    def validate(self, frame: pd.DataFrame) -> Verdict:
        verdict = Verdict()
        self.rows_checked += len(frame)
        if frame.empty:
            return verdict
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": self._frame_for_ge(frame)})
        result = batch.validate(
            self._suite, result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False}
        )
        outcome = {r.expectation_config.id: r for r in result.results}
        for rule, expectation in zip(self._by_expectation, self._suite.expectations, strict=True):
            checked = outcome[expectation.id]
            if checked.exception_info and checked.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"expectation {rule.id} could not run: {checked.exception_info.get('exception_message')}"
                )
            rows = checked.result.get("unexpected_index_list") or []
            self._record(verdict, rule, frame, rows)
        for rule in self._custom:
            if rule.column not in frame:  # UNKNOWN_KEYS, only in chunks with such keys
                continue
            failing = rule.custom(frame[rule.column])
            self._record(verdict, rule, frame, frame.index[failing.to_numpy(dtype=bool)])
        return verdict

    def _record(self, verdict: Verdict, rule: Rule, frame: pd.DataFrame, rows) -> None:
        self._unexpected[rule.id] += len(rows)
        if len(rows):
            values = frame[rule.column].loc[list(rows)]
            for row, value in zip(values.index.tolist(), values.tolist(), strict=True):
                verdict.add(row, rule.id, rule.explain(value))

    def summary(self) -> dict:
        """Per rule: the GE expectation behind it and how many rows of the file broke it."""
        return {
            "rows_checked": self.rows_checked,
            "expectations": [
                {
                    "rule": r.id,
                    "expectation": r.expectation.expectation_type if r.expectation else "funnelhouse",
                    "unexpected": self._unexpected[r.id],
                    "success": self._unexpected[r.id] == 0,
                }
                for r in self.rules
            ],
        }


def rule_words(rule_id: str) -> str:
    """'in_set:direction' -> 'direction: not in the allowed set' (for summaries)."""
    whole_row = {
        "malformed_row": "malformed row (not the header's fields, or no JSON object)",
        "unknown_keys": "keys outside the contract",
        "older_batch": "older batch: would change a row stored after a newer batch loaded",
    }
    if rule_id in whole_row:
        return whole_row[rule_id]
    kind, _, column = rule_id.partition(":")
    words = {
        "not_null": "required but empty (or only whitespace)",
        "type": "wrong type",
        "calendar": "no real date/time",
        "json": "not JSON",
        "nul": "contains a NUL character",
        "in_set": "not in the allowed set",
        "scale": "more decimals than the money column keeps (never rounded)",
        "range": "out of range",
        "storage": "does not fit the column type",
        "pattern": "does not match the code pattern",
        "length": "too long",
        "reference": "unknown reference",
        "unique": "clashes with a unique value",
        "moved": "key exists with another partition value",
    }
    return f"{column}: {words.get(kind, kind)}" if column else kind
