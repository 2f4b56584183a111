"""What each seed table becomes in ClickHouse ``raw``: load mode, partitioning, and the PII rule.

Every raw table is a ``ReplacingMergeTree(_version, _is_deleted)`` ordered by ``id``: an update
is a newer version of the same id, a deletion is a newer version flagged ``_is_deleted = 1``,
and ``FINAL`` (used by the staging models) returns each live row once. ``id`` is the ORDER BY
because it is the only column that never changes; a changed sort key would leave the old version
behind as a second row.

Only ``conversations`` is partitioned (by month of ``sent_at``): it is the one large time series.
A ``sent_at`` changed to another month puts the row's new version in another partition, where
merges no longer collapse it with the old one; ``FINAL`` still returns one row per id, because the
partition key is not part of the sort key, so ``FINAL`` merges across partitions. Other tables are
small enough (hundreds of thousands of rows) to stay unpartitioned and merge fully.

PII (DEVELOPERS.md, data-protection rule): contact details, birth dates, names of customers,
employee account data and free text that may carry contact details stay in PostgreSQL. A dropped
column is replaced by a derived, non-identifying column where a report needs the signal
(``has_phone``, ``age_band``, ``content_length``). Employee names are replicated: staff names
are what the performance reports show, and they are not customer data. Setting values (which may be
secrets) stay too, but for the few keys a model reads (``WAREHOUSE_SETTING_KEYS``).

Replication copies an allowlist: each table names the source columns it copies as they are
(``replicated``) and those reviewed to stay in PostgreSQL (``dropped``, which derived columns may
read). A column in neither, such as one a migration added since, is not copied, and every run warns
about it until it is classified here (``Replicator._warn_unclassified``): a new ``id_card_no`` must
not reach ClickHouse because nobody thought of it. tests/warehouse/test_replication_allowlist.py
holds the lists to the schema.

Short free text that a model shows but a person may have typed contact details into (a customer's
occupation, decision style and city, a journey step's trigger event, a withdrawal's reason, a tag's
description, a script's scenario and purpose, a material's purpose, a course's description) is replicated
masked (``masking.masked``), and so are the names and labels the marts show or group by (a tag's name, a
material's title, a customer's industry, persona type and trading platform, a script's and a material's
subcategory, a course's title) by rules that let names with digits pass ("VIP3", "MT5"): the rules, what
passes them and their price are ``ingestion.replication.masking``'s. Free text no model needs
(personality traits, a contact's source detail and group name, a script's follow-up) is dropped. Lists
typed by hand (a material's hashtags and tags, a script's tags, a customer's interests and risk flags)
are filtered as the extracted tags are (``masking.tag_filters``). What is chosen from lists is copied as
it is (a customer's source channel, country, time zone, income and capital range).

A conversation's ``source_message_id`` (the chat platform's message id, its business key in
PostgreSQL) stays there too: platforms build it from their users' ids, a WhatsApp Cloud API
``wamid.HBgL...`` being base64 whose payload holds the sender's phone number. No model or report
needs it (a message is ``id`` outside PostgreSQL), so it is dropped rather than hashed. Dropping a
column changes the raw table's column list, so the next run reloads the table once by itself
(``Replicator._needs_reload``), and the old values go with the old table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from ingestion.replication.connections import string_literal
from ingestion.replication.masking import masked, masked_columns, tag_filters


@dataclass(frozen=True)
class RawTable:
    name: str
    # incremental: pulled by the updated_at cursor, deletions by sync_deletions.
    # snapshot: small reference tables, reloaded whole and swapped in atomically.
    mode: str = "incremental"
    partition_by: str | None = None
    # Source columns copied as they are. Any other source column is not copied: it is dropped
    # (reviewed: stays in PostgreSQL) or not classified yet (warned about each run).
    replicated: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    # ClickHouse expressions over the source columns, evaluated while pulling.
    derived: dict[str, str] = field(default_factory=dict)
    # Columns of extracted tags, derived by the tag filter: a deployment extends its known words.
    tag_columns: tuple[str, ...] = ()

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"

    def with_known_tag_words(self, extra: Iterable[str]) -> RawTable:
        """This table with its tag filter also knowing the deployment's ``extra`` words (``tag_words``)."""
        if not self.tag_columns:
            return self
        return dataclasses.replace(self, derived={**self.derived, **tag_filters(self.tag_columns, extra)})


def _present(column: str) -> str:
    return f"toUInt8(ifNull({column}, '') != '')"


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


_CONTACT_COLUMNS = ("wechat_id", "whatsapp", "telegram", "email", "phone")
# A customer's attributes staff type in (no CHECK): free text ("occupation", "decision_style", "city"),
# labels that may be named with letters and digits ("Web3" an industry, "MT5" a trading platform), and
# lists of words typed by hand ("interests", "risk_flags"), each of which has held a phone number or a
# WeChat id. The marts group by the ordinary values ("上海", "金融", "富途牛牛", "美股").
_MASKED_CUSTOMER_COLUMNS = ("occupation", "decision_style", "city")
_MASKED_CUSTOMER_LABELS = ("industry", "persona_type", "trading_platform")
_CUSTOMER_TAG_COLUMNS = ("interests", "risk_flags")
# The system_settings keys whose values replication copies: those a model reads. Any other setting's
# value stays in PostgreSQL, as it may be a secret (an SMTP password, an API key) and a key's name
# says nothing of what a deployment stored under it; a key is added here when a model needs it, after
# checking its value can hold nothing secret or personal. kpi.overall_score_weights: the CRM's weights
# of the KPI mart's overall_score (dbt_project/macros/kpi_score_weights.sql), numbers only.
WAREHOUSE_SETTING_KEYS: tuple[str, ...] = ("kpi.overall_score_weights",)


def _warehouse_setting_value(key: str, value: str) -> str:
    """The setting's ``value`` where its ``key`` is one of WAREHOUSE_SETTING_KEYS, else NULL."""
    keys = ", ".join(string_literal(name) for name in WAREHOUSE_SETTING_KEYS)
    return f"if({key} in ({keys}), {value}, NULL)"


_TAG_COLUMNS = ("keywords", "intention_signals", "risk_keywords")
_MATERIAL_TAG_COLUMNS = ("hashtags", "tags")
_SCRIPT_TAG_COLUMNS = ("tags",)

RAW_TABLES: tuple[RawTable, ...] = (
    RawTable(
        "employees",
        replicated=_columns(
            "id employee_code name role department level status total_customers active_customers"
            " total_net_deposit hired_at created_at updated_at last_login_at"
        ),
        dropped=("avatar_url", "email", "phone", "username", "password_hash"),
    ),
    RawTable(
        "customers",
        replicated=_columns(
            "id customer_code gender country timezone language income_range"
            " investment_experience risk_preference capital_range tier"
            " intention_score engagement_score ltv_prediction current_stage source_channel"
            " referrer_id assigned_employee_id assigned_at status created_at updated_at"
            " last_contact_at"
        ),
        dropped=(
            "name",
            "avatar_url",
            "age",
            "birth_date",
            *_CONTACT_COLUMNS,
            "communication_style",
            "blacklist_reason",
            "personality_traits",
            *_MASKED_CUSTOMER_COLUMNS,
            *_MASKED_CUSTOMER_LABELS,
            *_CUSTOMER_TAG_COLUMNS,
        ),
        derived={
            **{f"has_{column.removesuffix('_id')}": _present(column) for column in _CONTACT_COLUMNS},
            "age_band": (
                "multiIf(age is null, 'unknown', age < 25, 'under 25', age < 35, '25-34', "
                "age < 45, '35-44', age < 55, '45-54', '55 and over')"
            ),
            "has_blacklist_reason": _present("blacklist_reason"),
            **masked_columns(text=_MASKED_CUSTOMER_COLUMNS, names=_MASKED_CUSTOMER_LABELS),
            **tag_filters(_CUSTOMER_TAG_COLUMNS),
        },
        tag_columns=_CUSTOMER_TAG_COLUMNS,
    ),
    RawTable(
        "tags",
        mode="snapshot",
        # A tag's name is typed by staff, and a customer's WeChat id has been one ("微信wxid_..."):
        # the customer mart lists the names of each customer's tags. Its description, typed alike, has
        # held the customer's WeChat id and phone number next to it.
        replicated=_columns("id category color icon is_system display_order created_at updated_at"),
        dropped=("name", "description"),
        derived=masked_columns(text=("description",), names=("name",)),
    ),
    RawTable(
        "customer_tags", replicated=_columns("id customer_id tag_id tagged_by tagged_at is_auto updated_at")
    ),
    RawTable(
        "customer_journey",
        replicated=_columns(
            "id source_key customer_id from_stage to_stage duration_days created_at updated_at"
        ),
        dropped=("notes", "trigger_event"),
        derived={"has_notes": _present("notes"), "trigger_event": masked("trigger_event")},
    ),
    RawTable(
        "funnel_tofu",
        replicated=_columns(
            "id source_key customer_id employee_id contact_date source_channel joined_group joined_at"
            " stayed_in_group left_group_at screening_result created_at updated_at"
        ),
        dropped=("screening_reason", "leave_reason", "source_detail", "group_name"),
        derived={
            "has_screening_reason": _present("screening_reason"),
            "has_leave_reason": _present("leave_reason"),
        },
    ),
    RawTable(
        "funnel_mofu",
        replicated=_columns(
            "id source_key customer_id employee_id total_conversations high_quality_conversations"
            " total_反问_count followed_recommendations follow_count account_opened account_platform"
            " opened_at days_to_open intention_score engagement_score created_at updated_at"
        ),
    ),
    RawTable(
        "funnel_bofu",
        replicated=_columns(
            "id source_key customer_id employee_id total_deposits total_withdrawals net_deposit"
            " deposit_count withdrawal_count first_deposit_amount first_deposit_at days_to_first_deposit"
            " max_deposit_amount withdrawal_rate is_vip vip_since created_at updated_at"
        ),
    ),
    RawTable(
        "deposits",
        replicated=_columns(
            "id deposit_code customer_id employee_id amount currency deposit_type platform status"
            " deposited_at confirmed_at created_at updated_at"
        ),
        dropped=("notes",),
        derived={"has_notes": _present("notes")},
    ),
    RawTable(
        "withdrawals",
        replicated=_columns(
            "id withdrawal_code customer_id employee_id amount currency risk_level"
            " retention_success status requested_at processed_at created_at updated_at"
        ),
        dropped=("retention_action", "reason"),
        derived={"has_retention_action": _present("retention_action"), "reason": masked("reason")},
    ),
    RawTable(
        "scripts",
        mode="snapshot",
        # Subcategory, scenario and purpose are typed by staff (the script mart shows the subcategory),
        # tags by hand like a material's; follow_up (free JSON no model reads) stays in PostgreSQL.
        replicated=_columns(
            "id script_code category level usage_count"
            " success_count success_rate avg_rating is_active created_by created_at updated_at"
        ),
        dropped=(
            "content_cn",
            "content_en",
            "follow_up",
            "subcategory",
            "scenario",
            "purpose",
            *_SCRIPT_TAG_COLUMNS,
        ),
        derived={
            **masked_columns(text=("scenario", "purpose"), names=("subcategory",)),
            **tag_filters(_SCRIPT_TAG_COLUMNS),
        },
        tag_columns=_SCRIPT_TAG_COLUMNS,
    ),
    RawTable(
        "conversations",
        partition_by="toYYYYMM(sent_at)",
        replicated=_columns(
            "id customer_id employee_id message_type direction sentiment script_used_id is_反问"
            " quality_score platform sent_at created_at updated_at"
        ),
        dropped=("content", "media_url", "source_message_id", *_TAG_COLUMNS),
        derived={
            "content_length": "toUInt32(lengthUTF8(ifNull(content, '')))",
            "has_media": _present("media_url"),
            **tag_filters(_TAG_COLUMNS),
        },
        tag_columns=_TAG_COLUMNS,
    ),
    RawTable(
        "conversation_events",
        replicated=_columns(
            "id source_key conversation_id conversation_sent_at customer_id employee_id event_type"
            " impact_score created_at updated_at"
        ),
        dropped=("event_data",),
        derived={"has_event_data": "toUInt8(event_data is not null)"},
    ),
    RawTable(
        "employee_kpis",
        replicated=_columns(
            "id employee_id date tofu_contacts tofu_retained tofu_retention_rate mofu_quality_conversations"
            " mofu_反问_count mofu_accounts_opened bofu_deposits_count bofu_deposit_amount"
            " bofu_withdrawal_amount bofu_net_deposit bofu_withdrawal_rate overall_score created_at"
            " updated_at"
        ),
    ),
    RawTable(
        "materials",
        mode="snapshot",
        replicated=_columns(
            "id material_code type category suitable_stages views likes"
            " comments shares published_count is_active created_by created_at updated_at"
        ),
        # The title is shown by the material mart, and a customer story's title has named its customer
        # with a phone number; subcategory (shown by the mart too) and purpose, hashtags and tags are
        # typed by hand like the title.
        dropped=(
            "content",
            "caption",
            "media_url",
            "thumbnail_url",
            "title",
            "subcategory",
            "purpose",
            *_MATERIAL_TAG_COLUMNS,
        ),
        derived={
            **masked_columns(text=("purpose",), names=("title", "subcategory")),
            **tag_filters(_MATERIAL_TAG_COLUMNS),
        },
        tag_columns=_MATERIAL_TAG_COLUMNS,
    ),
    RawTable(
        "training_courses",
        mode="snapshot",
        # A course's title and description are typed by staff like a material's title.
        replicated=_columns(
            "id course_code course_type level duration_days is_required display_order created_at updated_at"
        ),
        dropped=("content", "title", "description"),
        derived=masked_columns(text=("description",), names=("title",)),
    ),
    RawTable(
        "training_progress",
        replicated=_columns(
            "id employee_id course_id status progress_percentage score started_at completed_at updated_at"
        ),
    ),
    # Setting values may be secrets (SMTP passwords, API keys): only their presence leaves PostgreSQL,
    # and the values of WAREHOUSE_SETTING_KEYS, which the marts read (``warehouse_value``, NULL for
    # other keys). Not named ``value``: ClickHouse reads a name in the pull's SELECT as the alias it
    # defines, so has_value would test the NULLed value instead of the source's.
    RawTable(
        "system_settings",
        mode="snapshot",
        replicated=_columns("id key value_type category is_public updated_by updated_at"),
        # a description is typed by whoever adds the setting ("值班: 张伟 138..."): masked like a tag's
        dropped=("value", "description"),
        derived={
            "has_value": _present("value"),
            "warehouse_value": _warehouse_setting_value("key", "value"),
            **masked_columns(text=("description",)),
        },
    ),
)

BY_NAME = {table.name: table for table in RAW_TABLES}
