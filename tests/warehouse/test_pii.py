"""No customer contact detail, platform message id, employee account datum or setting secret reaches
ClickHouse: every String-like column of every table in raw, staging, core and marts is scanned for them."""

import base64
import random
import re

import psycopg
import pytest

from ingestion.generate import content, vocab
from ingestion.generate.config import GenerateConfig
from ingestion.replication import masking
from ingestion.replication.connections import clickhouse_client, string_literal
from ingestion.replication.masking import MASKED
from ingestion.replication.replicate import replicate_tables
from ingestion.replication.tables import BY_NAME
from ingestion.search.redaction import text as search_redaction

# Imported before any test changes DBT_TARGET_PATH: the code location reads its manifest path once.
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from tests.fixtures.warehouse import load_fixture

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


def _string_columns(client, databases: list[str]) -> list[tuple[str, str, str]]:
    """(database, table, column) of every String-like column of the ``databases``."""
    return client.query(
        "select database, table, name from system.columns "
        "where database in {databases:Array(String)} and (type like '%String%')",
        parameters={"databases": databases},
    ).result_rows


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
    columns = _string_columns(client, databases)
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


# Contact details typed into columns the marts show: a tag's name (the customer mart's tag_names), a
# material's title and tags (the material mart), and short free text with a WeChat id whose letters
# and digits are joined by "-", or a handle in a tag's name, where letters with digits may also name a
# product ("VIP3"). None may reach ClickHouse; the rows carrying them are masked.
_PLANTED = (
    "wxid_piitag01",
    "wxid_piimat01",
    "138-0013-8000",
    "wxid_piihash01",
    "zhangwei-1988",
    "zw-1988",
    "li-na-520",
    "ｚｗ－１９８８",
    "piilina88",
)
_PLANT = (
    "insert into tags (id, name, category) values (3, '微信wxid_piitag01', '其他')",
    "insert into tags (id, name, category) values (4, '加微信 piilina88 领资料', '其他')",
    "insert into customer_tags (customer_id, tag_id, tagged_by) values (2, 3, 2), (4, 4, 2)",
    "insert into materials (material_code, type, category, title, hashtags, tags, created_by) values"
    " ('MAT_PII', 'text', '客户案例', '客户张三 +86 138-0013-8000 wxid_piimat01 的开户故事',"
    ' \'["#投资", "wxid_piihash01", "+86 138-0013-8000"]\', \'["客户案例", "video", "zhangwei-1988"]\', 1)',
    "update customers set occupation = 'zhangwei-1988', decision_style = 'zw-1988' where id = 2",
    "update customers set decision_style = 'ｚｗ－１９８８' where id = 4",
    "update customer_journey set trigger_event = 'li-na-520' where source_key = 'J6'",
)


def test_contact_details_in_tag_names_material_titles_and_handles_reach_no_mart(
    built_warehouse, pg_dsn, clickhouse_env
):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in _PLANT:
            conn.execute(statement)
    replicate_tables(pg_dsn, ["tags", "customer_tags", "materials", "customers", "customer_journey"])
    models = ("dim_customers", "fct_stage_transitions", "mart_customer_overview", "mart_material_engagement")
    output: list[str] = []
    assert run_dbt(["run", "--select", *models], log=output.append) == 0, "\n".join(output[-40:])

    client = clickhouse_client()
    marts, core = marts_schema(), marts_schema().removesuffix("marts") + "core"
    staging = core.removesuffix("core") + "staging"
    for database, table, column in _string_columns(client, [clickhouse_env, staging, core, marts]):
        hits = _hits(client, f"`{database}`.`{table}`", f"`{column}`", set(_PLANTED))
        assert hits == 0, f"{database}.{table}.{column} holds planted contact details"

    def values(query: str) -> list[tuple]:
        return client.query(query).result_rows

    assert values(
        f"select customer_id, tag_names from `{marts}`.mart_customer_overview where customer_id in (2, 4) order by 1"
    ) == [(2, [MASKED]), (4, [MASKED])]
    assert values(f"select material_code, title from `{marts}`.mart_material_engagement order by 1") == [
        ("MAT_001", "Market basics"),
        ("MAT_PII", MASKED),
    ]
    assert values(
        f"select hashtags_json, tags_json from `{staging}`.stg_crm__materials where material_code = 'MAT_PII'"
    ) == [('["#投资"]', '["客户案例","video"]')]
    assert values(
        f"select customer_id, occupation, decision_style from `{core}`.dim_customers order by 1"
    ) == [
        (1, None, None),
        (2, MASKED, MASKED),
        (3, None, None),
        (4, None, MASKED),
    ]
    assert values(
        f"select trigger_event from `{core}`.fct_stage_transitions where transition_id in"
        f" (select id from `{clickhouse_env}`.customer_journey where source_key = 'J6')"
    ) == [(MASKED,)]


# Contact details typed into the attributes, descriptions and labels staff fill in by hand: a tag's
# description, a customer's city, industry, persona, trading platform, interests and risk flags, a
# script's subcategory, scenario, purpose and tags, a material's subcategory and purpose, a course's
# title and description, a setting's description. Customer 3 keeps ordinary values, which the marts group by.
_PLANTED_IN_ATTRIBUTES = (
    "wxid_lina88",
    "13800138000",
    "wxid_zhang88",
    "13912345678",
    "zhang_wei@qq.com",
    "wxid_zw1988",
    "lina@example.com",
    "13700137000",
    "13600136000",
    "13500135000",
    "wxid_course01",
    "13300133000",
)
_PLANT_ATTRIBUTES = (
    "insert into tags (id, name, category, description) values"
    " (5, '微信wxid_lina88', '其他', '客户张丽 微信 wxid_lina88 手机 13800138000'),"
    " (6, '美股', '兴趣', '关注美股的客户')",
    "update customers set industry = '微信 wxid_zhang88 电话13912345678', persona_type = '手机13912345678',"
    " city = 'zhang_wei@qq.com', trading_platform = 'wxid_zw1988',"
    ' interests = \'["美股", "13912345678", "wxid_zw1988"]\', risk_flags = \'["出金风险", "lina@example.com"]\''
    " where id = 2",
    "update customers set industry = '金融', persona_type = '愿意成长', city = '上海', trading_platform = 'MT5',"
    ' interests = \'["美股", "ETF"]\', risk_flags = \'["出金风险"]\' where id = 3',
    "update scripts set subcategory = '王女士 13700137000', scenario = '客户 wxid_lina88 犹豫期',"
    ' purpose = \'加她 lina@example.com\', tags = \'["13800138000", "wxid_lina88", "开户"]\' where id = 1',
    "update scripts set subcategory = 'VIP服务', scenario = '新人进群', purpose = '破冰互动' where id = 2",
    "update materials set subcategory = '客户 13600136000', purpose = '私信 wxid_lina88' where material_code = 'MAT_001'",
    "update training_courses set title = '带教 13500135000', description = '导师 wxid_course01' where id = 1",
    "insert into system_settings (key, value, value_type, category, description) values"
    " ('ops.duty', 'x', 'string', 'ops', '值班: 张伟 13300133000')",
)


def _scan_for_planted(client, databases: list[str], planted: tuple[str, ...]) -> None:
    for database, table, column in _string_columns(client, databases):
        hits = _hits(client, f"`{database}`.`{table}`", f"`{column}`", set(planted))
        assert hits == 0, f"{database}.{table}.{column} holds planted contact details"


def test_contact_details_in_typed_attributes_reach_no_model(built_warehouse, pg_dsn, clickhouse_env):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in _PLANT_ATTRIBUTES:
            conn.execute(statement)
    replicate_tables(
        pg_dsn, ["tags", "customers", "scripts", "materials", "training_courses", "system_settings"]
    )
    models = (
        "stg_crm__tags",
        "stg_crm__customers",
        "stg_crm__scripts",
        "stg_crm__materials",
        "stg_crm__training_courses",
        "stg_crm__system_settings",
        "dim_customers",
        "mart_customer_overview",
        "mart_material_engagement",
        "mart_script_performance",
    )
    output: list[str] = []
    assert run_dbt(["run", "--select", *models], log=output.append) == 0, "\n".join(output[-40:])

    client = clickhouse_client()
    marts, core = marts_schema(), marts_schema().removesuffix("marts") + "core"
    staging = core.removesuffix("core") + "staging"
    _scan_for_planted(client, [clickhouse_env, staging, core, marts], _PLANTED_IN_ATTRIBUTES)

    def values(query: str) -> list[tuple]:
        return client.query(query).result_rows

    assert values(
        f"select tag_id, tag_name, description from `{staging}`.stg_crm__tags where tag_id >= 5"
    ) == [
        (5, MASKED, MASKED),
        (6, "美股", "关注美股的客户"),
    ]
    # The masked values replace the typed ones; the ordinary ones stay readable, as the marts use them.
    assert values(
        f"select customer_id, city, industry, persona_type, trading_platform, interests_json, risk_flags_json"
        f" from `{core}`.dim_customers where customer_id in (2, 3) order by 1"
    ) == [
        (2, MASKED, MASKED, MASKED, MASKED, '["美股"]', '["出金风险"]'),
        (3, "上海", "金融", "愿意成长", "MT5", '["美股","ETF"]', '["出金风险"]'),
    ]
    assert values(
        f"select script_id, script_subcategory, scenario, purpose from `{staging}`.stg_crm__scripts order by 1"
    ) == [(1, MASKED, MASKED, MASKED), (2, "VIP服务", "新人进群", "破冰互动")]
    assert values(f"select id, tags from `{clickhouse_env}`.scripts final order by 1") == [
        (1, '["开户"]'),
        (2, None),
    ]
    assert values(f"select material_subcategory from `{marts}`.mart_material_engagement") == [(MASKED,)]
    assert values(f"select purpose from `{staging}`.stg_crm__materials") == [(MASKED,)]
    assert values(
        f"select course_id, course_title, description from `{staging}`.stg_crm__training_courses order by 1"
    ) == [(1, MASKED, MASKED), (2, "Growth", None)]


def _masked_as(table: str, column: str, values: list[str]) -> list[str]:
    """``values`` as replication copies them into ``table``'s ``column`` (its derived expression)."""
    expression = BY_NAME[table].derived[column]
    rows = (
        clickhouse_client()
        .query(
            f"select {expression} from (select arrayJoin({{values:Array(Nullable(String))}}) as `{column}`)",
            parameters={"values": values},
        )
        .result_rows
    )
    return [value for (value,) in rows]


def test_the_generators_typed_attributes_reach_clickhouse_as_they_are(clickhouse_env):
    """What the masking of typed attributes must let through: the generator's values, modelled on real
    ones, and labels named with letters and digits ("MT5", "Web3"); the marts group by them."""
    scripts = content.build_scripts()
    materials = content.material_rows(GenerateConfig(customers=1, seed=1), [], random.Random(1))
    courses = content.course_rows(GenerateConfig(customers=1, seed=1))
    ordinary = {
        ("tags", "description"): [tag.description for tag in content.build_tags()],
        ("customers", "city"): [city.name for place in vocab.PLACES for city in place.cities],
        ("customers", "industry"): [industry for _, industry in vocab.OCCUPATIONS] + ["Web3", "B2B电商"],
        ("customers", "persona_type"): list(vocab.PERSONAS),
        ("customers", "trading_platform"): [
            *vocab.TRADING_PLATFORMS_ZH,
            *vocab.TRADING_PLATFORMS_EN,
            "MT5",
            "MT4",
        ],
        ("scripts", "subcategory"): [script.subcategory for script in scripts],
        ("scripts", "scenario"): [script.scenario for script in scripts],
        ("scripts", "purpose"): [script.purpose for script in scripts],
        ("materials", "subcategory"): [row["subcategory"] for row in materials],
        ("materials", "purpose"): [row["purpose"] for row in materials],
        ("training_courses", "title"): [row["title"] for row in courses],
        ("training_courses", "description"): [row["description"] for row in courses],
    }
    for (table, column), values in ordinary.items():
        assert _masked_as(table, column, values) == values, f"{table}.{column}"
    # Lists typed by hand: the generator's interests and risk flags all pass the tag filter.
    for column, words in (("interests", vocab.INTERESTS), ("risk_flags", vocab.RISK_FLAGS)):
        listed = "[" + ",".join(f'"{word}"' for word in words) + "]"
        assert _masked_as("customers", column, [listed]) == [listed], column


# Phone numbers read out in Chinese numerals, in forms each of the two lists of numerals (replication's
# and the search index's) once lacked: "两" for two, the formal "叄" for three, traditional "兩".
@pytest.mark.parametrize(
    "phone", ["电话 一三八两两一三八两两两", "电话 壹叄捌零零壹叄捌零零零", "電話 一三八兩兩一三八兩兩兩"]
)
def test_phone_numbers_in_chinese_numerals_are_masked(clickhouse_env, phone):
    assert _masked_as("tags", "description", [phone]) == [MASKED]  # free text
    assert _masked_as("tags", "name", [phone]) == [MASKED]  # a name
    # a list typed by hand, filtered as the extracted tags are
    assert _masked_as("customers", "interests", [f'["美股","{phone}"]']) == ['["美股"]']


def test_characters_that_show_nothing_split_no_handle(pg_dsn, clickhouse_env):
    """A handle split by a character that shows nothing (zero-width space, word joiner, soft hyphen:
    Unicode's format characters) is read as the handle it shows, by the free-text rules and by those of
    names; a value that passes is copied as it was typed, invisible characters and all."""
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "update customers set occupation = %s, decision_style = %s, city = %s, industry = %s,"
            " persona_type = %s, trading_platform = %s where id = 2",
            (
                "lina\u200b88",  # free text: "lina88"
                "li\u00adna\u00ad520",  # free text: "lina520"
                "上\u200b海",  # free text that passes
                "微信 zhang\u200bwei88",  # a name: an id after a messenger's label
                "zhang\u2060wei1988",  # a name: a handle with digits
                # A name masked before the invisible characters were read past: after a label a zero-width
                # space is a separator, without it "wxa1b2c3" holds no label.
                "wx\u200ba1b2c3",
            ),
        )
        # The same with four of them in a row: more than the label's rule allows as its separator.
        conn.execute("update customers set industry = %s where id = 3", ("wx\u200b\u2060\u200b\u2060a1b2c3",))
    replicate_tables(pg_dsn, ["customers"])
    assert clickhouse_client().query(
        "select occupation, decision_style, city, industry, persona_type, trading_platform"
        f" from `{clickhouse_env}`.customers final where id = 2"
    ).result_rows == [(MASKED, MASKED, "上\u200b海", MASKED, MASKED, MASKED)]
    assert clickhouse_client().query(
        f"select industry from `{clickhouse_env}`.customers final where id = 3"
    ).result_rows == [(MASKED,)]


def _characters_of_class(body: str) -> list[str]:
    """The characters a regex character-class body of literal characters and ``a-b`` ranges holds."""
    characters, at = [], 0
    while at < len(body):
        if at + 2 < len(body) and body[at + 1] == "-":
            characters += [chr(code) for code in range(ord(body[at]), ord(body[at + 2]) + 1)]
            at += 3
        else:
            characters.append(body[at])
            at += 1
    return characters


def test_clickhouse_reads_past_every_character_the_search_index_removes(clickhouse_env):
    """The rules ClickHouse runs while replicating read past each character the search index's redaction
    removes before its rules (Cf, and the unassigned default-ignorables RE2's Cf leaves out): a handle
    split by any of them is read whole in ClickHouse as in the index."""
    invisible = _characters_of_class(search_redaction._INVISIBLE)
    split = ", ".join(string_literal(f"lina{character}88") for character in invisible)
    [(left,)] = (
        clickhouse_client()
        .query(f"select arrayFilter(x -> {masking._matched_form('x')} != 'lina88', [{split}])")
        .result_rows
    )
    assert len(invisible) > 3000 and [f"U+{ord(value[4]):04X}" for value in left] == []
