"""The landing-file contract: what a row of each seed table looks like before it reaches PostgreSQL.

One declaration per seed table serves the generator (what to write), validation (what to check)
and the loader (how to merge). Landing columns are the seed's column names, except that:

* database ids never appear: a reference is written as the referenced row's business key
  (``customer_id`` -> ``customer_code``, ``tag_id`` -> ``tag_name``, ``script_used_id`` ->
  ``script_used_code`` ...), because ids are PostgreSQL's own;
* ``id`` and ``updated_at`` are PostgreSQL's: never in a landing file;
* tables without a business key in the seed carry one (``source_key``, ``course_code``,
  ``source_message_id``), which is what makes re-loading a file idempotent.

This package's names are the contract's public API: :mod:`~ingestion.contracts.vocabulary` holds
what a column, a reference and a table contract are (and the shorthands tables are declared with),
:mod:`~ingestion.contracts.tables` each seed table's contract and their load order.
"""

from ingestion.contracts.tables import CONTRACTS, load_order
from ingestion.contracts.vocabulary import (
    CURRENCY_PATTERN,
    MATERIAL_TYPES,
    STAGES,
    TIERS,
    Column,
    Reference,
    TableContract,
    boolean,
    customer,
    date,
    decimal,
    employee,
    integer,
    json,
    money,
    positive_money,
    stage,
    text,
    timestamp,
)

__all__ = [
    "CONTRACTS",
    "CURRENCY_PATTERN",
    "MATERIAL_TYPES",
    "STAGES",
    "TIERS",
    "Column",
    "Reference",
    "TableContract",
    "boolean",
    "customer",
    "date",
    "decimal",
    "employee",
    "integer",
    "json",
    "load_order",
    "money",
    "positive_money",
    "stage",
    "text",
    "timestamp",
]
