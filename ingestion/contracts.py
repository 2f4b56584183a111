"""The landing-file contract: what a row of each seed table looks like before it reaches PostgreSQL.

One declaration per seed table serves the generator (what to write), validation (what to check)
and the loader (how to merge). Landing columns are the seed's column names, except that:

* database ids never appear: a reference is written as the referenced row's business key
  (``customer_id`` -> ``customer_code``, ``tag_id`` -> ``tag_name``, ``script_used_id`` ->
  ``script_used_code`` ...), because ids are PostgreSQL's own;
* ``id`` and ``updated_at`` are PostgreSQL's: never in a landing file;
* tables without a business key in the seed carry one (``source_key``, ``course_code``,
  ``source_message_id``), which is what makes re-loading a file idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A material's kinds (materials.type). Also the words a CRM tags materials with, so the replication's
# tag filter knows them (``ingestion.replication.tables``).
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


CONTRACTS: dict[str, TableContract] = {
    contract.table: contract
    for contract in [
        TableContract(
            "employees",
            ("employee_code",),
            (
                text("employee_code", 50, required=True, pattern=r"^EMP_[A-Za-z0-9_]+$"),
                text("name", 100, required=True),
                text("avatar_url", 500),
                text("email", 200, required=True),
                text("phone", 50),
                text("username", 50, required=True),
                text("password_hash", 255, required=True),
                text("role", 50, required=True, allowed=("admin", "manager", "employee", "trainer")),
                text("department", 100, allowed=("ToFu", "MoFu", "BoFu", "VIP", "培训")),
                text(
                    "level", 50, default="新人", allowed=("新人", "组员", "A级执行者", "精英", "高手", "主管")
                ),
                text("status", 20, default="active", allowed=("active", "inactive", "suspended")),
                integer("total_customers", minimum=0),
                integer("active_customers", minimum=0),
                money("total_net_deposit"),
                date("hired_at"),
                timestamp("created_at", required=True),
                timestamp("last_login_at"),
            ),
        ),
        TableContract(
            "customers",
            ("customer_code",),
            (
                text("customer_code", 50, required=True, pattern=r"^CUST_[A-Za-z0-9_]+$"),
                text("name", 100, required=True),
                text("avatar_url", 500),
                text("gender", 10, allowed=("男", "女", "未知")),
                integer("age", minimum=0, maximum=150),
                date("birth_date"),
                text("wechat_id", 100),
                text("whatsapp", 50),
                text("telegram", 100),
                text("email", 200),
                text("phone", 50),
                text("country", 100),
                text("city", 100),
                text("timezone", 50),
                json("language"),
                text("occupation", 200),
                text("industry", 100),
                text("income_range", 50),
                text("investment_experience", 50, allowed=("新手", "中级", "高级")),
                text("risk_preference", 50, allowed=("保守", "稳健", "激进")),
                text("capital_range", 50),
                text("trading_platform", 100),
                json("interests"),
                json("personality_traits"),
                text("communication_style"),
                text("decision_style", 100),
                text("tier", 10, default="C", allowed=TIERS),
                text("persona_type", 50),
                integer("intention_score", minimum=0, maximum=60),
                integer("engagement_score", minimum=0, maximum=100),
                decimal("ltv_prediction"),
                stage("current_stage", default="Awareness"),
                text("source_channel", 100),
                timestamp("assigned_at"),
                text("status", 20, default="active", allowed=("active", "inactive", "blacklist")),
                text("blacklist_reason"),
                json("risk_flags"),
                timestamp("created_at", required=True),
                timestamp("last_contact_at"),
            ),
            (
                customer("referrer_code", "referrer_id", required=False),
                employee("assigned_employee_code", "assigned_employee_id", required=False),
            ),
        ),
        TableContract(
            "tags",
            ("name",),
            (
                text("name", 50, required=True),
                text("category", 50, required=True),
                text("color", 20),
                text("icon", 50),
                text("description"),
                boolean("is_system"),
                integer("display_order"),
                timestamp("created_at", required=True),
            ),
        ),
        TableContract(
            "customer_tags",
            ("customer_code", "tag_name"),
            (timestamp("tagged_at", required=True), boolean("is_auto")),
            (
                customer(),
                Reference("tag_name", "tags", "name", ("tag_id",), required=True),
                employee("tagged_by_code", "tagged_by", required=False),
            ),
        ),
        TableContract(
            "customer_journey",
            ("source_key",),
            (
                text("source_key", 100, required=True),
                stage("from_stage", required=True),
                stage("to_stage", required=True),
                integer("duration_days", minimum=0),
                text("trigger_event", 100),
                text("notes"),
                timestamp("created_at", required=True),
            ),
            (customer(),),
        ),
        TableContract(
            "funnel_tofu",
            ("source_key",),
            (
                text("source_key", 100, required=True),
                date("contact_date", required=True),
                text("source_channel", 100, required=True),
                text("source_detail", 200),
                boolean("joined_group"),
                text("group_name", 100),
                timestamp("joined_at"),
                boolean("stayed_in_group"),
                timestamp("left_group_at"),
                text("leave_reason", 200),
                text("screening_result", 50, allowed=("通过", "筛掉")),
                text("screening_reason"),
                timestamp("created_at", required=True),
            ),
            (customer(), employee()),
        ),
        TableContract(
            "funnel_mofu",
            ("source_key",),
            (
                text("source_key", 100, required=True),
                integer("total_conversations", minimum=0),
                integer("high_quality_conversations", minimum=0),
                integer("total_反问_count", minimum=0),
                boolean("followed_recommendations"),
                integer("follow_count", minimum=0),
                boolean("account_opened"),
                text("account_platform", 100),
                timestamp("opened_at"),
                integer("days_to_open", minimum=0),
                integer("intention_score", minimum=0, maximum=60),
                integer("engagement_score", minimum=0, maximum=100),
                timestamp("created_at", required=True),
            ),
            (customer(), employee()),
        ),
        TableContract(
            "funnel_bofu",
            ("source_key",),
            (
                text("source_key", 100, required=True),
                money("total_deposits", minimum=0),
                money("total_withdrawals", minimum=0),
                money("net_deposit"),
                integer("deposit_count", minimum=0),
                integer("withdrawal_count", minimum=0),
                positive_money("first_deposit_amount"),
                timestamp("first_deposit_at"),
                integer("days_to_first_deposit", minimum=0),
                positive_money("max_deposit_amount"),
                # A percent with no cap of 100: profit withdrawals take out more than was deposited.
                # DECIMAL(5,2) is its only maximum (999.99, the loader's storage check).
                decimal("withdrawal_rate", minimum=0),
                boolean("is_vip"),
                timestamp("vip_since"),
                timestamp("created_at", required=True),
            ),
            (customer(), employee()),
        ),
        TableContract(
            "deposits",
            ("deposit_code",),
            (
                text("deposit_code", 50, required=True, pattern=r"^DEP_[0-9]{8}_[A-Za-z0-9]+$"),
                positive_money("amount", required=True),
                text("currency", 10, default="USD", pattern=CURRENCY_PATTERN),
                text("deposit_type", 50, required=True, allowed=("首金", "复入金", "大额入金")),
                text("platform", 100),
                text("status", 20, default="pending", allowed=("pending", "confirmed", "failed")),
                text("notes"),
                timestamp("deposited_at", required=True),
                timestamp("confirmed_at"),
                timestamp("created_at", required=True),
            ),
            (customer(), employee()),
        ),
        TableContract(
            "withdrawals",
            ("withdrawal_code",),
            (
                text("withdrawal_code", 50, required=True, pattern=r"^WTH_[0-9]{8}_[A-Za-z0-9]+$"),
                positive_money("amount", required=True),
                text("currency", 10, default="USD", pattern=CURRENCY_PATTERN),
                text("reason", 100, allowed=("盈利提现", "恐慌离场", "资金需求", "其他")),
                text("risk_level", 20, allowed=("低", "中", "高")),
                text("retention_action"),
                boolean("retention_success"),
                text("status", 20, default="pending", allowed=("pending", "confirmed", "failed")),
                timestamp("requested_at", required=True),
                timestamp("processed_at"),
                timestamp("created_at", required=True),
            ),
            (customer(), employee()),
        ),
        TableContract(
            "scripts",
            ("script_code",),
            (
                text("script_code", 50, required=True),
                text("category", 100, required=True),
                text("subcategory", 100),
                text("scenario", 200),
                text("level", 20, allowed=("初级", "中级", "高级")),
                text("content_cn", required=True),
                text("content_en"),
                text("purpose"),
                json("follow_up"),
                json("tags"),
                integer("usage_count", minimum=0),
                integer("success_count", minimum=0),
                decimal("success_rate", minimum=0, maximum=100),
                decimal("avg_rating", minimum=0, maximum=5),
                boolean("is_active"),
                timestamp("created_at", required=True),
            ),
            (employee("created_by_code", "created_by", required=False),),
        ),
        TableContract(
            "conversations",
            ("source_message_id",),
            (
                text("source_message_id", 100, required=True),
                text("message_type", 20, required=True, allowed=("text", "image", "voice", "video")),
                text("direction", 10, required=True, allowed=("inbound", "outbound")),
                text("content"),
                text("media_url", 500),
                text("sentiment", 20, allowed=("positive", "neutral", "negative")),
                json("keywords"),
                json("intention_signals"),
                json("risk_keywords"),
                boolean("is_反问"),
                integer("quality_score", minimum=1, maximum=10),
                text("platform", 50, allowed=("wechat", "whatsapp", "telegram")),
                timestamp("sent_at", required=True),
                timestamp("created_at", required=True),
            ),
            (
                customer(),
                employee(),
                Reference("script_used_code", "scripts", "script_code", ("script_used_id",)),
            ),
        ),
        TableContract(
            "conversation_events",
            ("source_key",),
            (
                text("source_key", 100, required=True),
                text(
                    "event_type",
                    50,
                    required=True,
                    allowed=(
                        "反问",
                        "框架输出",
                        "粘度建立",
                        "推进动作",
                        "高质量对话",
                        "意向信号",
                        "风险信号",
                    ),
                ),
                json("event_data"),
                integer("impact_score"),
                timestamp("created_at", required=True),
            ),
            (
                Reference(
                    "conversation_message_id",
                    "conversations",
                    "source_message_id",
                    ("conversation_id", "conversation_sent_at"),
                    ("id", "sent_at"),
                ),
                customer(),
                employee(),
            ),
        ),
        TableContract(
            "employee_kpis",
            ("employee_code", "date"),
            (
                date("date", required=True),
                integer("tofu_contacts", minimum=0),
                integer("tofu_retained", minimum=0),
                decimal("tofu_retention_rate", minimum=0, maximum=100),
                integer("mofu_quality_conversations", minimum=0),
                integer("mofu_反问_count", minimum=0),
                integer("mofu_accounts_opened", minimum=0),
                integer("bofu_deposits_count", minimum=0),
                money("bofu_deposit_amount", minimum=0),
                money("bofu_withdrawal_amount", minimum=0),
                money("bofu_net_deposit"),
                decimal("bofu_withdrawal_rate", minimum=0),
                decimal("overall_score", minimum=0, maximum=100),
                timestamp("created_at", required=True),
            ),
            (employee(),),
        ),
        TableContract(
            "materials",
            ("material_code",),
            (
                text("material_code", 50, required=True),
                text("type", 20, required=True, allowed=MATERIAL_TYPES),
                text("category", 100, required=True),
                text("subcategory", 100),
                text("title", 200),
                text("content"),
                text("media_url", 500),
                text("thumbnail_url", 500),
                text("caption"),
                json("hashtags"),
                text("purpose"),
                json("suitable_stages"),
                integer("views", minimum=0),
                integer("likes", minimum=0),
                integer("comments", minimum=0),
                integer("shares", minimum=0),
                integer("published_count", minimum=0),
                json("tags"),
                boolean("is_active"),
                timestamp("created_at", required=True),
            ),
            (employee("created_by_code", "created_by", required=False),),
        ),
        TableContract(
            "training_courses",
            ("course_code",),
            (
                text("course_code", 50, required=True),
                text("title", 200, required=True),
                text("description"),
                text("course_type", 50, required=True, allowed=("7天上手", "30天成才", "90天中坚")),
                text("level", 20, allowed=("新人", "进阶", "高级")),
                integer("duration_days", minimum=1),
                json("content"),
                boolean("is_required"),
                integer("display_order"),
                timestamp("created_at", required=True),
            ),
        ),
        TableContract(
            "training_progress",
            ("employee_code", "course_code"),
            (
                text(
                    "status",
                    20,
                    default="not_started",
                    allowed=("not_started", "in_progress", "completed", "failed"),
                ),
                integer("progress_percentage", minimum=0, maximum=100),
                decimal("score", minimum=0, maximum=100),
                timestamp("started_at"),
                timestamp("completed_at"),
            ),
            (
                employee(),
                Reference("course_code", "training_courses", "course_code", ("course_id",), required=True),
            ),
        ),
        TableContract(
            "system_settings",
            ("key",),
            (
                text("key", 100, required=True),
                text("value"),
                text("value_type", 20, allowed=("string", "number", "boolean", "json")),
                text("category", 100),
                text("description"),
                boolean("is_public"),
            ),
            (employee("updated_by_code", "updated_by", required=False),),
        ),
    ]
}


def load_order() -> list[str]:
    """Seed tables ordered so every table comes after the tables it references."""
    ordered: list[str] = []
    pending = dict(CONTRACTS)
    while pending:
        ready = [name for name, c in pending.items() if all(dep in ordered for dep in c.depends_on)]
        if not ready:
            raise RuntimeError(f"reference cycle among {sorted(pending)}")
        for name in ready:
            ordered.append(name)
            del pending[name]
    return ordered
