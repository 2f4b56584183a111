{#- Days and months of the CRM's timestamps and dates, as Date32.

    Replication keeps every day and instant from year 1 to 9999 as the CRM has it (raw's DateTime64 and
    Date32; tests/warehouse/test_replication_date_range.py), but a ClickHouse Date only spans
    1970-01-01..2149-06-06, and the functions returning one do not fail outside it: toDate() wraps
    around (a deposit stamped 2160-01-01 becomes 1980-07-27, 1925-01-01 becomes 2104-06-07), and
    toStartOfMonth() and its kin cap a Date32 before 1970 at 1970-01-01. A wrapped day lands inside the
    reporting periods and the KPI date spine (a 2160 deposit counted in 1980, the spine started there),
    where the rule of as_of_date.sql would have left it out: a day after the build date is in no period.
    So every model takes "the day of" and "the month of" through these macros, never toDate() or
    toStartOfMonth() on a row's timestamp or day. Comparisons with a Date (the build date, the spine's
    days) work as they are: ClickHouse compares both as Date32. -#}

{#- The UTC day of `timestamp` (a DateTime64 in UTC, as raw's are, or a Date/Date32), as Date32 (Nullable
    when it is): the day exactly, from 0001-01-01 to 9999-12-31. -#}
{% macro day_of(timestamp) -%}
    toDate32({{ timestamp }})
{%- endmacro %}

{#- The first day of the month of `day` (a Date32, Date or timestamp), as Date32: 1969-12-15 is 1969-12-01,
    where toStartOfMonth() would return 1970-01-01. NULL when `day` is. -#}
{% macro month_of(day) -%}
    makeDate32(toYear({{ day }}), toMonth({{ day }}), 1)
{%- endmacro %}
