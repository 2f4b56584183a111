-- A hand-made CRM small enough to compute every mart value by hand (see test_mart_values.py).
-- Timestamps are relative to the suite's day (tests/fixtures/clock.py), the day every test build is as
-- of, so "last 7/30 days" and "this month" windows stay stable, also in a run crossing midnight;
-- every relative timestamp is at noon so day boundaries never cut a case in half.
-- Contact details are recognisable strings, so the PII scan can look for them in ClickHouse.

-- The suite's day, as load_fixture sets it (funnelhouse.test_day): its midnight UTC, and the date.
create function pg_temp.test_midnight() returns timestamptz language sql stable
    as $$ select current_setting('funnelhouse.test_day')::date::timestamp at time zone 'UTC' $$;
create function pg_temp.test_today() returns date language sql stable
    as $$ select current_setting('funnelhouse.test_day')::date $$;

insert into employees (id, employee_code, name, email, phone, username, password_hash, role, department, level, status, hired_at, created_at)
values
    (1, 'EMP_M1', 'Mona Manager', 'mona@corp.example', '+1-555-0100', 'mona', 'hash-m', 'manager', 'MoFu', '主管', 'active', '2024-01-01', '2024-01-01 09:00'),
    (2, 'EMP_A1', 'Alice Advisor', 'alice@corp.example', '+1-555-0101', 'alice', 'hash-a', 'employee', 'MoFu', '精英', 'active', '2024-02-01', '2024-02-01 09:00'),
    (3, 'EMP_B1', 'Bob Broker', 'bob@corp.example', '+1-555-0102', 'bob', 'hash-b', 'employee', 'BoFu', '组员', 'active', '2024-03-01', '2024-03-01 09:00');

insert into customers (id, customer_code, name, gender, age, birth_date, wechat_id, whatsapp, telegram, email, phone,
                       country, tier, intention_score, engagement_score, current_stage, source_channel,
                       assigned_employee_id, status, communication_style, created_at, last_contact_at)
values
    (1, 'CUST_001', 'Zhang Wei', '男', 34, '1991-05-01', 'wx_zhangwei_001', '+86-138-0000-0001', 'tg_zhangwei', 'zhang.wei@mail.example', '+86-138-0000-0001',
     'CN', 'A', 50, 80, 'Subscribe', 'TikTok', 2, 'active', 'prefers calls on +86-138-0000-0001',
     pg_temp.test_midnight() - interval '60 days' + interval '12 hours', pg_temp.test_midnight() - interval '1 day' + interval '12 hours'),
    (2, 'CUST_002', 'Li Na', '女', 28, '1997-02-02', 'wx_lina_002', null, null, 'li.na@mail.example', '+86-139-0000-0002',
     'CN', 'B', 20, 30, 'Attention', 'Facebook', 2, 'active', null,
     pg_temp.test_midnight() - interval '20 days' + interval '12 hours', pg_temp.test_midnight() - interval '40 days' + interval '12 hours'),
    (3, 'CUST_003', 'Wang Fang', '女', 47, '1978-03-03', 'wx_wangfang_003', null, null, 'wang.fang@mail.example', '+86-137-0000-0003',
     'SG', 'S', 60, 95, 'Growth', '推荐', 3, 'inactive', null,
     pg_temp.test_midnight() - interval '100 days' + interval '12 hours', pg_temp.test_midnight() - interval '1 day' + interval '12 hours'),
    (4, 'CUST_004', 'Chen Jie', '未知', null, null, 'wx_chenjie_004', null, null, 'chen.jie@mail.example', '+86-136-0000-0004',
     'MY', 'C', 0, 0, 'Awareness', 'TikTok', null, 'active', null,
     pg_temp.test_midnight() - interval '5 days' + interval '12 hours', null);

insert into tags (id, name, category) values (1, 'VIP', '客户分层'), (2, '高意向', '意向');
insert into customer_tags (customer_id, tag_id, tagged_by) values (1, 1, 2), (1, 2, 2), (3, 1, 3);

insert into customer_journey (source_key, customer_id, from_stage, to_stage, duration_days, trigger_event, notes, created_at)
select 'J' || n, customer_id, from_stage, to_stage, duration_days, 'manual', 'call +86-138-0000-0001',
       pg_temp.test_midnight() - make_interval(days => days_ago) + interval '12 hours'
from (values
    (1, 1, 'Awareness', 'Attention', 5, 55),
    (2, 1, 'Attention', 'Trust', 5, 50),
    (3, 1, 'Trust', 'Engage', 10, 40),
    (4, 1, 'Engage', 'Action', 10, 30),
    (5, 1, 'Action', 'Subscribe', 5, 25),
    (6, 2, 'Awareness', 'Attention', 5, 15),
    (7, 3, 'Awareness', 'Trust', 10, 90),
    (8, 3, 'Trust', 'Subscribe', 10, 80),
    (9, 3, 'Subscribe', 'Growth', 20, 60)
) as j (n, customer_id, from_stage, to_stage, duration_days, days_ago);

-- Customer 3 was contacted twice: the seed view shows two rows for it, the mart keeps the latest contact.
insert into funnel_tofu (source_key, customer_id, employee_id, contact_date, source_channel, stayed_in_group, joined_group, screening_reason, leave_reason)
values
    ('T1', 1, 2, pg_temp.test_today() - 60, 'TikTok', true, true, 'said: add me wx_zhangwei_001', null),
    ('T2', 2, 2, pg_temp.test_today() - 20, 'Facebook', false, true, null, 'left the group, call +86-139-0000-0002'),
    ('T3a', 3, 3, pg_temp.test_today() - 100, '推荐', false, false, null, null),
    ('T3b', 3, 3, pg_temp.test_today() - 95, '推荐', true, true, null, null);

insert into funnel_mofu (source_key, customer_id, employee_id, total_conversations, high_quality_conversations,
                         "total_反问_count", account_opened, opened_at, days_to_open, intention_score, engagement_score)
values
    ('M1', 1, 2, 10, 4, 2, true, pg_temp.test_midnight() - interval '30 days' + interval '12 hours', 30, 50, 80),
    ('M2', 2, 2, 2, 0, 0, false, null, null, 20, 30),
    ('M3', 3, 3, 20, 12, 5, true, pg_temp.test_midnight() - interval '85 days' + interval '12 hours', 15, 60, 95);

insert into funnel_bofu (source_key, customer_id, employee_id, total_deposits, total_withdrawals, net_deposit, deposit_count,
                         withdrawal_count, first_deposit_amount, first_deposit_at, days_to_first_deposit, max_deposit_amount,
                         withdrawal_rate, is_vip)
values
    ('B1', 1, 2, 1500, 200, 1300, 2, 1, 1000, pg_temp.test_midnight() - interval '25 days' + interval '12 hours', 35, 1000, 13.33, false),
    ('B3', 3, 3, 5000, 0, 5000, 1, 0, 5000, pg_temp.test_midnight() - interval '80 days' + interval '12 hours', 20, 5000, 0, true);

-- Zhang's first deposit and his withdrawal were settled in USDT: the real seed fx_rates_to_usd takes it at
-- 1 USD, so every mart's money is the same as in USD, and a rate missing or wrong would show.
insert into deposits (deposit_code, customer_id, employee_id, amount, currency, deposit_type, status, notes, deposited_at)
values
    ('DEP_20250101_1', 1, 2, 1000, 'USDT', '首金', 'confirmed', 'paid from +86-138-0000-0001', pg_temp.test_midnight() - interval '25 days' + interval '12 hours'),
    ('DEP_20250101_2', 1, 2, 500, 'USD', '复入金', 'confirmed', null, pg_temp.test_midnight() - interval '3 days' + interval '12 hours'),
    ('DEP_20250101_3', 3, 3, 5000, 'USD', '首金', 'confirmed', null, pg_temp.test_midnight() - interval '80 days' + interval '12 hours'),
    ('DEP_20250101_4', 2, 2, 100, 'USD', '首金', 'failed', null, pg_temp.test_midnight() - interval '2 days' + interval '12 hours');

insert into withdrawals (withdrawal_code, customer_id, employee_id, amount, currency, reason, risk_level, retention_action, status, requested_at)
values ('WTH_20250101_1', 1, 2, 200, 'USDT', '盈利提现', '低', 'called him on wx_zhangwei_001', 'confirmed',
        pg_temp.test_midnight() - interval '2 days' + interval '12 hours');

insert into scripts (id, script_code, category, content_cn, usage_count, success_count, success_rate, created_by)
values (1, 'SCR_001', '12大模型', '你好', 10, 4, 40, 1), (2, 'SCR_002', '场景话术', '再见', 0, 0, null, 1);

select ensure_conversation_partitions((pg_temp.test_today() - 45)::date, pg_temp.test_today());

insert into conversations (source_message_id, customer_id, employee_id, message_type, direction, content, sentiment,
                           script_used_id, "is_反问", quality_score, platform, sent_at, keywords)
-- message 2 came by WhatsApp: its id is a Cloud API wamid, base64 whose payload holds the sender's phone
-- number (8613800000001, Zhang Wei's): it must stay in PostgreSQL
select case n when 2 then 'wamid.HBgNODYxMzgwMDAwMDAwMRUCABIYFDNFQjBDNEExRjJEM0U0RjVBNkI3AA==' else 'MSG' || n end,
       customer_id, employee_id, 'text', direction, content, sentiment, script_id, counter_question, quality,
       case n when 2 then 'whatsapp' else 'wechat' end,
       pg_temp.test_midnight() - make_interval(days => days_ago) + interval '12 hours',
       -- an extracted tag that copied the customer's phone number: only "美股" may reach ClickHouse
       case n when 2 then '["美股", "+86-138-0000-0001"]'::jsonb end
from (values
    (1, 1, 2, 'outbound', 'hello', 'positive', 1, true, 8, 1),
    (2, 1, 2, 'inbound', 'my phone is +86-138-0000-0001', 'neutral', null, false, 6, 2),
    (3, 1, 2, 'outbound', 'see you', 'positive', 1, false, 9, 3),
    (4, 1, 2, 'outbound', 'follow-up', 'neutral', null, true, 5, 20),
    (5, 2, 2, 'inbound', 'email me at li.na@mail.example', 'negative', null, false, 3, 40),
    (6, 3, 3, 'outbound', 'great month', 'positive', 2, false, 9, 1)
) as m (n, customer_id, employee_id, direction, content, sentiment, script_id, counter_question, quality, days_ago);

insert into conversation_events (source_key, customer_id, employee_id, event_type, event_data, impact_score, created_at)
values ('E1', 1, 2, '反问', '{"text": "wx_zhangwei_001"}', 5, pg_temp.test_midnight() - interval '1 day' + interval '12 hours');

insert into employee_kpis (employee_id, date, tofu_contacts, tofu_retained, mofu_quality_conversations, bofu_deposits_count,
                           bofu_deposit_amount, bofu_net_deposit, overall_score)
values (2, pg_temp.test_today() - 3, 0, 0, 1, 1, 500, 500, 55);

insert into materials (material_code, type, category, title, content, views, likes, comments, shares, published_count, created_by)
values ('MAT_001', 'video', '专业投资', 'Market basics', 'body', 100, 10, 2, 1, 3, 1);

insert into training_courses (id, course_code, title, course_type, level, duration_days, is_required)
values (1, 'C7', 'Onboarding', '7天上手', '新人', 7, true), (2, 'C30', 'Growth', '30天成才', '进阶', 30, false);

insert into training_progress (employee_id, course_id, status, progress_percentage, score, started_at, completed_at)
values
    (2, 1, 'completed', 100, 92, pg_temp.test_midnight() - interval '300 days', pg_temp.test_midnight() - interval '290 days'),
    (2, 2, 'in_progress', 40, null, pg_temp.test_midnight() - interval '20 days', null),
    (3, 1, 'completed', 100, 75, pg_temp.test_midnight() - interval '200 days', pg_temp.test_midnight() - interval '195 days');

insert into system_settings (key, value, value_type, category) values ('smtp.password', 'hunter2-secret', 'string', 'mail');

-- Explicit ids above: move the sequences past them so later inserts (tests) get fresh ids.
select setval(pg_get_serial_sequence('employees', 'id'), 100);
select setval(pg_get_serial_sequence('customers', 'id'), 100);
select setval(pg_get_serial_sequence('tags', 'id'), 100);
select setval(pg_get_serial_sequence('scripts', 'id'), 100);
select setval(pg_get_serial_sequence('training_courses', 'id'), 100);
