"""The words a landing contract is written in: a column and its rules (:class:`Column`), a
reference to another table's business key (:class:`Reference`), a table's contract
(:class:`TableContract`), the shorthands the table definitions use (``text``, ``money``,
``customer()`` ...) and the closed sets of values shared by several tables (``STAGES``, ``TIERS``).

Kept apart from :mod:`ingestion.contracts.tables`, the declaration of each seed table, so that what
a rule means is read in one place and the tables read as a list of columns."""

from __future__ import annotations

from dataclasses import dataclass, field

# A material's kinds (materials.type). Also the words a CRM tags materials with, so the replication's
# tag filter knows them (``ingestion.replication.masking``).
MATERIAL_TYPES = ("image", "video", "text", "mixed")

STAGES = ("Awareness", "Attention", "Trust", "Engage", "Action", "Subscribe", "Growth", "Loyal", "Advocate")
TIERS = ("S", "A", "B", "C")
# The seed's currency is VARCHAR(10) with no closed set: ISO 4217's three letters (USD, EUR) and
# the codes trading platforms settle in beside them (USDT, USDC, BTC, 1INCH) all fit. Upper case
# only, so that 'usdt' and 'USDT' never count as two currencies in a report; 3 to 10 characters,
# as no currency code is shorter and the column holds no more.
CURRENCY_PATTERN = r"^[A-Z0-9]{3,10}$"


@dataclass(frozen=True)
class Column:
    """A landing column stored as-is in the database column of the same name.

    An empty value is a missing one in every format: an empty CSV field, a missing or null JSONL
    key, a Parquet null, and "" in JSONL or Parquet (CSV cannot tell "" from missing, so no format
    loads ''; a JSONL JSON column's "" is the JSON string). An empty value is stored as the
    column's DEFAULT where PostgreSQL gives one (``is_vip`` FALSE, a count 0), on a new row and on
    a re-sent one alike (but for ``default`` columns, below); else as NULL. The loader takes the DEFAULTs from the database's catalog,
    not from here: the schema is their one source of truth. ``required``: an empty value
    quarantines the row (rule ``not_null``), and so does a text value of only whitespace.
    ``default``: the seed's DEFAULT of a NOT NULL column (checked against the database by the
    tests); an empty value is not NULL there but "not given": a new row takes the default (as an
    INSERT without the column would), an existing row keeps its stored value (re-sending a row
    without it changes nothing). Timestamps whose DEFAULT is CURRENT_TIMESTAMP (``created_at``,
    ``tagged_at``) stay required: the time of the load is not the time of the event, and would
    move the row in every report by date.

    ``exact`` (a decimal holding money: an amount, a deposit or withdrawal total, a balance): a
    value with more decimals than the database column keeps is quarantined (rule ``scale``), never
    rounded, as 1.23456789 BTC stored as 1.23 would lose money without a word. Any other decimal (a
    ratio, a rating, a score, a prediction) is rounded to the column's scale, as PostgreSQL and the
    CRM exporting it do (a success rate of 33.333333333333336 is 33.33).
    """

    name: str
    kind: str  # text | int | decimal | bool | date | timestamp | json
    required: bool = False
    default: str | None = None
    max_length: int | None = None
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    pattern: str | None = None
    exact: bool = False


@dataclass(frozen=True)
class Reference:
    """A landing column holding another table's business key, resolved to database columns on load."""

    landing_column: str
    table: str
    key_column: str
    db_columns: tuple[str, ...]
    target_columns: tuple[str, ...] = ("id",)
    required: bool = False


@dataclass(frozen=True)
class TableContract:
    table: str
    natural_key: tuple[str, ...]
    columns: tuple[Column, ...]
    references: tuple[Reference, ...] = field(default_factory=tuple)

    @property
    def landing_columns(self) -> list[str]:
        return [c.name for c in self.columns] + [r.landing_column for r in self.references]

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.table for r in self.references if r.table != self.table))

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def text(name, max_length=None, **rules) -> Column:
    return Column(name, "text", max_length=max_length, **rules)


def integer(name, **rules) -> Column:
    return Column(name, "int", **rules)


def decimal(name, **rules) -> Column:
    return Column(name, "decimal", **rules)


def boolean(name, **rules) -> Column:
    return Column(name, "bool", **rules)


def date(name, **rules) -> Column:
    return Column(name, "date", **rules)


def timestamp(name, **rules) -> Column:
    return Column(name, "timestamp", **rules)


def json(name, **rules) -> Column:
    return Column(name, "json", **rules)


def customer(landing="customer_code", db="customer_id", required=True) -> Reference:
    return Reference(landing, "customers", "customer_code", (db,), required=required)


def employee(landing="employee_code", db="employee_id", required=True) -> Reference:
    return Reference(landing, "employees", "employee_code", (db,), required=required)


def stage(name, **rules) -> Column:
    return text(name, 50, allowed=STAGES, **rules)


def money(name, **rules) -> Column:
    """An amount of money: stored exactly or not at all (see ``Column.exact``)."""
    return decimal(name, exact=True, **rules)


def positive_money(name, **rules) -> Column:
    return money(name, minimum=0, exclusive_minimum=True, **rules)
