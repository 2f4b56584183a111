"""The shapes of landing text PostgreSQL takes for each contract type (regexes RE2 and Python both
run) and the storage limits of its INTEGER and numeric types: the constants the other validation
modules (:mod:`ingestion.load.validate`) read."""

INT_PATTERN = r"^[+-]?[0-9]+$"
DECIMAL_PATTERN = r"^[+-]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[eE][+-]?[0-9]+)?$"
# PostgreSQL's boolean words (its unique prefixes such as 'tr' or 'of' aside: no exporter writes them),
# in any case of ASCII letters, as PostgreSQL takes them. Spelt out as [Tt][Rr]...: a (?i) match
# (RE2's and Python's alike) folds Unicode, taking 'yeſ' (long s) for 'yes', which PostgreSQL
# refuses, failing the whole file instead of the row.
_BOOL_WORDS = ("true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0")
BOOL_PATTERN = (
    "^(?:"
    + "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word) for word in _BOOL_WORDS)
    + ")$"
)
# Year 0001-9999, month 01-12, day 01-31, hour 00-23, minute and second 00-59, zone offset up to
# +-15:59 (PostgreSQL refuses year 0000 and bigger offsets). A pattern check cannot tell Feb 30
# from Mar 30, so calendar_failures looks at days 29-31. No lookahead: RE2 runs these too.
# A timestamp with an offset is valid: the loader stores it converted to UTC (merge_sql.utc_timestamp).
# Up to 9 fraction digits: .NET writes 7, Java, pandas and Spark 9; PostgreSQL rounds them to the
# microseconds it stores, as it would any other value it keeps at a coarser precision.
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_DAY = rf"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
DATE_PATTERN = rf"^{_DAY}$"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,9})?"
_ZONE = r"(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)?"
TIMESTAMP_PATTERN = rf"^{_DAY}[ T]{_TIME}{_ZONE}$"
TYPE_PATTERNS = {
    "int": INT_PATTERN,
    "decimal": DECIMAL_PATTERN,
    "bool": BOOL_PATTERN,
    "date": DATE_PATTERN,
    "timestamp": TIMESTAMP_PATTERN,
}
TYPE_WORDS = {
    "int": "an integer",
    "decimal": "a number",
    "bool": "true or false",
    "date": "a date YYYY-MM-DD",
    "timestamp": "a timestamp YYYY-MM-DD HH:MM:SS",
}
INT4_RANGE = (-(2**31), 2**31 - 1)
# PostgreSQL's numeric (DECIMAL columns, and every number inside a jsonb value) holds at most 16383
# digits after the point and values below 10**131072. Its input refuses anything beyond ("value
# overflows numeric format"), even a value that DECIMAL(12,2) would round to 0.00 (1e-16384), and
# the whole file with it.
NUMERIC_MAX_SCALE = 16383
NUMERIC_MAX_WHOLE_DIGITS = 131072
