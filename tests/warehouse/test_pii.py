"""No customer contact detail, employee account datum or setting secret reaches ClickHouse:
every String-like column of every table in raw, staging, core and marts is scanned for them."""

import psycopg

_CUSTOMER_PII = (
    "select unnest(array[name, phone, email, wechat_id, whatsapp, telegram, birth_date::text]) from customers"
)
_EMPLOYEE_PII = "select unnest(array[email, phone, username, password_hash]) from employees"
_SECRETS = "select value from system_settings"


def _sensitive_values(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        values = set()
        for query in (_CUSTOMER_PII, _EMPLOYEE_PII, _SECRETS):
            values |= {value for (value,) in conn.execute(query) if value}
    return values


_HITS = (
    "select count() from {relation} "
    "where hasAny(splitByRegexp('[\\\\s,;:\"\\\\[\\\\]]+', toString({column})), {{values:Array(String)}}) "
    "or multiSearchAny(toString({column}), {{values:Array(String)}})"
)


def _hits(client, relation: str, column: str, values: set[str]) -> int:
    query = _HITS.format(relation=relation, column=column)
    return client.query(query, parameters={"values": sorted(values)}).result_rows[0][0]


def test_the_scan_finds_pii_where_there_is_some(warehouse):
    client = warehouse.client()
    assert _hits(client, "(select 'call me: +86-138-0000-0001' as note)", "note", {"+86-138-0000-0001"}) == 1


def test_no_pii_in_clickhouse(warehouse):
    sensitive = _sensitive_values(warehouse.pg_dsn)
    assert len(sensitive) > 20  # the fixture does hold PII in PostgreSQL
    client = warehouse.client()
    databases = [warehouse.raw_database] + [warehouse.schema(name) for name in ("staging", "core", "marts")]
    columns = client.query(
        "select database, table, name from system.columns "
        "where database in {databases:Array(String)} and (type like '%String%')",
        parameters={"databases": databases},
    ).result_rows
    assert len(columns) > 50
    scanned_tables = set()
    for database, table, column in columns:
        scanned_tables.add((database, table))
        hits = _hits(client, f"`{database}`.`{table}`", f"`{column}`", sensitive)
        assert hits == 0, f"{database}.{table}.{column} holds PII"
    assert len(scanned_tables) >= 18


def test_leave_reason_reaches_clickhouse_only_as_a_flag(warehouse):
    """Customers leave phone numbers in the reason they left a group: only whether there is one is kept."""
    rows = (
        warehouse.client()
        .query(
            f"select source_key, has_leave_reason from `{warehouse.schema('staging')}`.stg_crm__funnel_tofu "
            "order by source_key"
        )
        .result_rows
    )
    assert rows == [("T1", False), ("T2", True), ("T3a", False), ("T3b", False)]


def test_extracted_tags_reach_clickhouse_without_the_ones_holding_contact_details(warehouse):
    rows = (
        warehouse.client()
        .query(
            f"select source_message_id, keywords_json from `{warehouse.schema('staging')}`.stg_crm__conversations "
            "where keywords_json is not null"
        )
        .result_rows
    )
    assert rows == [("MSG2", '["美股"]')]
