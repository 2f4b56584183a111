"""No customer contact detail, platform message id, employee account datum or setting secret reaches
ClickHouse: every String-like column of every table in raw, staging, core and marts is scanned for them."""

import base64
import re

import psycopg

_CUSTOMER_PII = (
    "select unnest(array[name, phone, email, wechat_id, whatsapp, telegram, birth_date::text]) from customers"
)
_EMPLOYEE_PII = "select unnest(array[email, phone, username, password_hash]) from employees"
# A platform's message id can encode its sender: a WhatsApp wamid is base64 holding the phone number.
_MESSAGE_IDS = "select source_message_id from conversations"
_SECRETS = "select value from system_settings"
_WHATSAPP_MESSAGE = (
    "select c.id, c.source_message_id, s.whatsapp from conversations c join customers s on s.id = c.customer_id"
    " where c.platform = 'whatsapp'"
)


def _sensitive_values(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        values = set()
        for query in (_CUSTOMER_PII, _EMPLOYEE_PII, _MESSAGE_IDS, _SECRETS):
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


def _whatsapp_message(dsn: str) -> tuple[int, str, str]:
    """(id, source_message_id, sender's WhatsApp number) of the fixture's one WhatsApp message."""
    with psycopg.connect(dsn) as conn:
        [row] = conn.execute(_WHATSAPP_MESSAGE).fetchall()
    return row


def test_the_whatsapp_message_id_holds_its_senders_phone_number(warehouse):
    """What makes a message id personal data: the fixture's wamid decodes to the customer's number."""
    _, message_id, whatsapp = _whatsapp_message(warehouse.pg_dsn)
    payload = base64.b64decode(message_id.removeprefix("wamid."))
    assert re.sub(r"\D", "", whatsapp).encode() in payload
    assert whatsapp not in message_id  # so only the message id itself can be looked for


def test_no_pii_in_clickhouse(warehouse):
    sensitive = _sensitive_values(warehouse.pg_dsn)
    assert len(sensitive) > 20  # the fixture does hold PII in PostgreSQL
    assert _whatsapp_message(warehouse.pg_dsn)[1] in sensitive
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
            f"select conversation_id, keywords_json from `{warehouse.schema('staging')}`.stg_crm__conversations "
            "where keywords_json is not null"
        )
        .result_rows
    )
    assert rows == [(_whatsapp_message(warehouse.pg_dsn)[0], '["美股"]')]
