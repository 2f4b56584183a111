"""The warehouse benchmark's synthetic CRM (warehouse.py, step 1), written straight into PostgreSQL with
SQL (``generate_series``): at 100,000 customers / 5 million conversations the landing-file generator +
loader would take longer than everything measured, and the warehouse only sees PostgreSQL anyway.
Then 1% new rows at a time, for the incremental builds."""

from __future__ import annotations

import psycopg

STAGES = "array['Awareness','Attention','Trust','Engage','Action','Subscribe','Growth','Loyal','Advocate']"

SEED_SQL = """
select ensure_conversation_partitions((current_date - 400)::date, current_date);
insert into employees (employee_code, name, email, phone, username, password_hash, role, department, level, created_at)
select 'EMP_' || i, 'Employee ' || i, 'e' || i || '@corp.example', '+1-555-' || i, 'user' || i, 'hash',
       case when i <= 5 then 'manager' else 'employee' end,
       (array['ToFu','MoFu','BoFu','VIP','培训'])[1 + i % 5], case when i <= 5 then '主管' else '组员' end,
       now() - interval '2 years'
from generate_series(1, 200) i;
insert into customers (customer_code, name, age, wechat_id, email, phone, country, tier, intention_score,
                       engagement_score, current_stage, source_channel, assigned_employee_id, status, created_at, last_contact_at)
select 'CUST_' || i, 'Customer ' || i, 20 + i % 50, 'wx_' || i, 'c' || i || '@mail.example', '+86-' || i,
       'CN', (array['S','A','B','C'])[1 + i % 4], i % 61, i % 101, ({stages})[1 + i % 9],
       (array['TikTok','Facebook','推荐','小红书'])[1 + i % 4], 6 + i % 195,
       case when i % 10 = 0 then 'inactive' else 'active' end,
       now() - make_interval(days => {offset} + i % {spread_days}), now() - make_interval(days => i % 30)
from generate_series({first}, {last}) i;
insert into funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel, stayed_in_group, joined_group)
select 'T' || c.id, c.id, c.assigned_employee_id, c.created_at::date, c.source_channel, c.id % 3 <> 0, true
from customers c where c.id between {first} and {last};
insert into customer_journey (source_key, customer_id, from_stage, to_stage, duration_days, created_at)
select 'J' || c.id || '_' || s, c.id, ({stages})[s], ({stages})[s + 1], 3,
       least(c.created_at + make_interval(days => 3 * s), now())
from customers c cross join generate_series(1, 2) s where c.id between {first} and {last};
insert into funnel_mofu (source_key, customer_id, employee_id, total_conversations, high_quality_conversations,
                         account_opened, opened_at)
select 'M' || c.id, c.id, c.assigned_employee_id, 50, 10, c.id % 3 = 0, case when c.id % 3 = 0 then least(c.created_at + interval '10 days', now()) end
from customers c where c.id between {first} and {last} and c.id % 100 < 35;
insert into funnel_bofu (source_key, customer_id, employee_id, total_deposits, total_withdrawals, net_deposit,
                         deposit_count, first_deposit_amount, first_deposit_at, withdrawal_rate, is_vip)
select 'B' || c.id, c.id, c.assigned_employee_id, 3000, 300, 2700, 3, 1000, least(c.created_at + interval '20 days', now()), 10, c.id % 7 = 0
from customers c where c.id between {first} and {last} and c.id % 100 < 10;
insert into deposits (deposit_code, customer_id, employee_id, amount, deposit_type, status, deposited_at)
select 'DEP_20250101_' || c.id || 'x' || n, c.id, c.assigned_employee_id, 1000, case when n = 1 then '首金' else '复入金' end,
       'confirmed', least(c.created_at + make_interval(days => 20 + 5 * n), now())
from customers c cross join generate_series(1, 3) n where c.id between {first} and {last} and c.id % 100 < 10;
insert into withdrawals (withdrawal_code, customer_id, employee_id, amount, reason, status, requested_at)
select 'WTH_20250101_' || c.id, c.id, c.assigned_employee_id, 300, '盈利提现', 'confirmed', least(c.created_at + interval '40 days', now())
from customers c where c.id between {first} and {last} and c.id % 100 < 2;
insert into conversations (source_message_id, customer_id, employee_id, message_type, direction, content, sentiment,
                           "is_反问", quality_score, platform, sent_at)
select 'MSG' || i, 1 + i % {customers}, 6 + (1 + i % {customers}) % 195, 'text',
       case when i % 2 = 0 then 'inbound' else 'outbound' end, 'message ' || i,
       (array['positive','neutral','negative'])[1 + i % 3], i % 11 = 0, 1 + i % 10, 'wechat',
       now() - make_interval(days => {offset} + i % {spread_days}, secs => i % 86400)
from generate_series({first_message}, {last_message}) i;
"""

REFERENCE_SQL = """
insert into tags (name, category) select 'tag' || i, '行为' from generate_series(1, 20) i;
insert into customer_tags (customer_id, tag_id) select c.id, 1 + c.id % 20 from customers c;
insert into scripts (script_code, category, content_cn) select 'SCR_' || i, '场景话术', '...' from generate_series(1, 50) i;
insert into materials (material_code, type, category, views, likes) select 'MAT_' || i, 'video', '专业投资', 100 * i, i
from generate_series(1, 100) i;
insert into training_courses (course_code, title, course_type) select 'C' || i, 'Course ' || i, '7天上手' from generate_series(1, 10) i;
insert into training_progress (employee_id, course_id, status, progress_percentage)
select e.id, c.id, 'completed', 100 from employees e cross join training_courses c where (e.id + c.id) % 2 = 0;
insert into employee_kpis (employee_id, date, tofu_contacts, overall_score)
select e.id, current_date - d, 3, 50 from employees e cross join generate_series(1, 365) d;
insert into system_settings (key, value) select 'k' || i, 'v' || i from generate_series(1, 10) i;
"""

# The tables whose row counts the results report.
COUNTED_TABLES = (
    "customers",
    "conversations",
    "conversation_events",
    "customer_journey",
    "funnel_tofu",
    "funnel_mofu",
    "funnel_bofu",
    "deposits",
    "withdrawals",
    "employee_kpis",
    "employees",
)


def load(
    dsn: str,
    first: int,
    last: int,
    first_message: int,
    last_message: int,
    customers: int,
    offset: int,
    spread_days: int = 365,
) -> None:
    """Customers ``first..last`` and conversations ``first_message..last_message`` (with any of the
    first ``customers``), stamped over the ``spread_days`` days before now."""
    sql = SEED_SQL.format(
        spread_days=spread_days,
        stages=STAGES,
        first=first,
        last=last,
        first_message=first_message,
        last_message=last_message,
        customers=customers,
        offset=offset,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set synchronous_commit = off")
        for statement in filter(str.strip, sql.split(";\n")):
            if first > 1 and statement.strip().startswith("insert into employees"):
                continue
            conn.execute(statement)


def add_reference_rows(dsn: str) -> dict[str, int]:
    """The reference tables' rows (tags, scripts, courses, KPIs ...), then ``vacuum analyze``; the row
    count of each of ``COUNTED_TABLES``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in filter(str.strip, REFERENCE_SQL.split(";\n")):
            conn.execute(statement)
        conn.execute("vacuum analyze")
        return {
            table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in COUNTED_TABLES
        }


class SyntheticCrm:
    """The benchmark's CRM in PostgreSQL: ``customers`` customers and ``conversations`` conversations,
    then 1% more of each at a time."""

    def __init__(self, dsn: str, customers: int, conversations: int):
        self.dsn = dsn
        self.customers, self.conversations = customers, conversations
        self.extra_customers = max(1, customers // 100)
        self.extra_messages = max(1, conversations // 100)

    def load_initial(self) -> None:
        load(self.dsn, 1, self.customers, 1, self.conversations, self.customers, 0)

    def add_one_percent(self, spread_days: int) -> None:
        """1% new customers and conversations, stamped over the ``spread_days`` days before now."""
        customers, messages = self.customers, self.conversations
        load(
            self.dsn,
            customers + 1,
            customers + self.extra_customers,
            messages + 1,
            messages + self.extra_messages,
            customers + self.extra_customers,
            0,
            spread_days,
        )
        self.customers, self.conversations = customers + self.extra_customers, messages + self.extra_messages
