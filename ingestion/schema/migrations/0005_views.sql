-- Section 3, exactly as the seed specifies them.

CREATE VIEW v_customer_overview AS
SELECT
    c.id,
    c.customer_code,
    c.name,
    c.tier,
    c.current_stage,
    c.intention_score,
    c.engagement_score,

    -- ToFu数据
    t.source_channel,
    t.stayed_in_group,

    -- MoFu数据
    m.total_conversations,
    m.high_quality_conversations,
    m.account_opened,

    -- BoFu数据
    b.total_deposits,
    b.total_withdrawals,
    b.net_deposit,
    b.withdrawal_rate,
    b.is_vip,

    -- 负责员工
    e.name AS employee_name,
    e.employee_code,

    c.created_at,
    c.last_contact_at
FROM customers c
LEFT JOIN funnel_tofu t ON c.id = t.customer_id
LEFT JOIN funnel_mofu m ON c.id = m.customer_id
LEFT JOIN funnel_bofu b ON c.id = b.customer_id
LEFT JOIN employees e ON c.assigned_employee_id = e.id;

CREATE VIEW v_employee_performance AS
SELECT
    e.id,
    e.employee_code,
    e.name,
    e.level,
    e.department,

    COUNT(DISTINCT c.id) AS total_customers,
    COUNT(DISTINCT CASE WHEN c.status = 'active' THEN c.id END) AS active_customers,

    SUM(b.net_deposit) AS total_net_deposit,
    AVG(b.withdrawal_rate) AS avg_withdrawal_rate,

    COUNT(DISTINCT CASE WHEN m.account_opened THEN c.id END) AS accounts_opened,
    COUNT(DISTINCT CASE WHEN b.first_deposit_at IS NOT NULL THEN c.id END) AS first_deposits,

    e.created_at AS hired_at
FROM employees e
LEFT JOIN customers c ON e.id = c.assigned_employee_id
LEFT JOIN funnel_mofu m ON c.id = m.customer_id
LEFT JOIN funnel_bofu b ON c.id = b.customer_id
GROUP BY e.id;
