-- The operational schema of shared/spec/database-design.zh.md (section 2), made valid PostgreSQL.
--
-- Deviations from the seed text, all keeping its meaning (listed in README "Schema additions"):
--  * MySQL-style inline INDEX clauses become CREATE INDEX statements (0002).
--  * Closed sets and ranges stated in the seed's comments are CHECK constraints.
--  * Tables without a business key get one for idempotent loading from landing files:
--    source_key (customer_journey, funnel_*, conversation_events), course_code
--    (training_courses), source_message_id (conversations).
--  * updated_at on every table (DB-maintained, 0003) so replication and search can sync by watermark.
--  * conversations is range-partitioned by sent_at (section 5), so its primary key is (id, sent_at);
--    conversation_events references it through (conversation_id, conversation_sent_at).
--  * employees is created before customers: customers.assigned_employee_id references it.

CREATE TABLE employees (
    id BIGSERIAL PRIMARY KEY,
    employee_code VARCHAR(50) UNIQUE NOT NULL CHECK (employee_code ~ '^EMP_[A-Za-z0-9_]+$'),
    name VARCHAR(100) NOT NULL,
    avatar_url VARCHAR(500),
    email VARCHAR(200) UNIQUE NOT NULL,
    phone VARCHAR(50),
    username VARCHAR(50) UNIQUE NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role VARCHAR(50) NOT NULL CHECK (role IN ('admin', 'manager', 'employee', 'trainer')),
    department VARCHAR(100) CHECK (department IN ('ToFu', 'MoFu', 'BoFu', 'VIP', '培训')),
    level VARCHAR(50) NOT NULL DEFAULT '新人'
        CHECK (level IN ('新人', '组员', 'A级执行者', '精英', '高手', '主管')),
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'suspended')),
    total_customers INTEGER DEFAULT 0 CHECK (total_customers >= 0),
    active_customers INTEGER DEFAULT 0 CHECK (active_customers >= 0),
    total_net_deposit DECIMAL(15,2) DEFAULT 0,
    hired_at DATE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_login_at TIMESTAMP
);

CREATE TABLE customers (
    id BIGSERIAL PRIMARY KEY,
    customer_code VARCHAR(50) UNIQUE NOT NULL CHECK (customer_code ~ '^CUST_[A-Za-z0-9_]+$'),
    name VARCHAR(100) NOT NULL,
    avatar_url VARCHAR(500),
    gender VARCHAR(10) CHECK (gender IN ('男', '女', '未知')),
    age INTEGER CHECK (age BETWEEN 0 AND 150),
    birth_date DATE,
    wechat_id VARCHAR(100),
    whatsapp VARCHAR(50),
    telegram VARCHAR(100),
    email VARCHAR(200),
    phone VARCHAR(50),
    country VARCHAR(100),
    city VARCHAR(100),
    timezone VARCHAR(50),
    language JSONB,
    occupation VARCHAR(200),
    industry VARCHAR(100),
    income_range VARCHAR(50),
    investment_experience VARCHAR(50) CHECK (investment_experience IN ('新手', '中级', '高级')),
    risk_preference VARCHAR(50) CHECK (risk_preference IN ('保守', '稳健', '激进')),
    capital_range VARCHAR(50),
    trading_platform VARCHAR(100),
    interests JSONB,
    personality_traits JSONB,
    communication_style TEXT,
    decision_style VARCHAR(100),
    tier VARCHAR(10) NOT NULL DEFAULT 'C' CHECK (tier IN ('S', 'A', 'B', 'C')),
    persona_type VARCHAR(50),
    intention_score INTEGER DEFAULT 0 CHECK (intention_score BETWEEN 0 AND 60),
    engagement_score INTEGER DEFAULT 0 CHECK (engagement_score BETWEEN 0 AND 100),
    ltv_prediction DECIMAL(12,2),
    current_stage VARCHAR(50) NOT NULL DEFAULT 'Awareness' CHECK (current_stage IN (
        'Awareness', 'Attention', 'Trust', 'Engage', 'Action', 'Subscribe', 'Growth', 'Loyal', 'Advocate')),
    source_channel VARCHAR(100),
    referrer_id BIGINT REFERENCES customers(id),
    assigned_employee_id BIGINT REFERENCES employees(id),
    assigned_at TIMESTAMP,
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'blacklist')),
    blacklist_reason TEXT,
    risk_flags JSONB,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_contact_at TIMESTAMP
);

CREATE TABLE tags (
    id BIGSERIAL PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE,
    category VARCHAR(50) NOT NULL,
    color VARCHAR(20),
    icon VARCHAR(50),
    description TEXT,
    is_system BOOLEAN DEFAULT FALSE,
    display_order INTEGER DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE customer_tags (
    id BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags(id),
    tagged_by BIGINT REFERENCES employees(id),
    tagged_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    is_auto BOOLEAN DEFAULT FALSE,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (customer_id, tag_id)
);

CREATE TABLE customer_journey (
    id BIGSERIAL PRIMARY KEY,
    source_key VARCHAR(100) UNIQUE NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    from_stage VARCHAR(50) NOT NULL CHECK (from_stage IN (
        'Awareness', 'Attention', 'Trust', 'Engage', 'Action', 'Subscribe', 'Growth', 'Loyal', 'Advocate')),
    to_stage VARCHAR(50) NOT NULL CHECK (to_stage IN (
        'Awareness', 'Attention', 'Trust', 'Engage', 'Action', 'Subscribe', 'Growth', 'Loyal', 'Advocate')),
    duration_days INTEGER CHECK (duration_days >= 0),
    trigger_event VARCHAR(100),
    notes TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE funnel_tofu (
    id BIGSERIAL PRIMARY KEY,
    source_key VARCHAR(100) UNIQUE NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    contact_date DATE NOT NULL,
    source_channel VARCHAR(100) NOT NULL,
    source_detail VARCHAR(200),
    joined_group BOOLEAN DEFAULT FALSE,
    group_name VARCHAR(100),
    joined_at TIMESTAMP,
    stayed_in_group BOOLEAN DEFAULT FALSE,
    left_group_at TIMESTAMP,
    leave_reason VARCHAR(200),
    screening_result VARCHAR(50) CHECK (screening_result IN ('通过', '筛掉')),
    screening_reason TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE funnel_mofu (
    id BIGSERIAL PRIMARY KEY,
    source_key VARCHAR(100) UNIQUE NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    total_conversations INTEGER DEFAULT 0 CHECK (total_conversations >= 0),
    high_quality_conversations INTEGER DEFAULT 0 CHECK (high_quality_conversations >= 0),
    "total_反问_count" INTEGER DEFAULT 0 CHECK ("total_反问_count" >= 0),
    followed_recommendations BOOLEAN DEFAULT FALSE,
    follow_count INTEGER DEFAULT 0 CHECK (follow_count >= 0),
    account_opened BOOLEAN DEFAULT FALSE,
    account_platform VARCHAR(100),
    opened_at TIMESTAMP,
    days_to_open INTEGER CHECK (days_to_open >= 0),
    intention_score INTEGER DEFAULT 0 CHECK (intention_score BETWEEN 0 AND 60),
    engagement_score INTEGER DEFAULT 0 CHECK (engagement_score BETWEEN 0 AND 100),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE funnel_bofu (
    id BIGSERIAL PRIMARY KEY,
    source_key VARCHAR(100) UNIQUE NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    total_deposits DECIMAL(15,2) DEFAULT 0 CHECK (total_deposits >= 0),
    total_withdrawals DECIMAL(15,2) DEFAULT 0 CHECK (total_withdrawals >= 0),
    net_deposit DECIMAL(15,2) DEFAULT 0,
    deposit_count INTEGER DEFAULT 0 CHECK (deposit_count >= 0),
    withdrawal_count INTEGER DEFAULT 0 CHECK (withdrawal_count >= 0),
    first_deposit_amount DECIMAL(12,2) CHECK (first_deposit_amount > 0),
    first_deposit_at TIMESTAMP,
    days_to_first_deposit INTEGER CHECK (days_to_first_deposit >= 0),
    max_deposit_amount DECIMAL(12,2) CHECK (max_deposit_amount > 0),
    withdrawal_rate DECIMAL(5,2) DEFAULT 0 CHECK (withdrawal_rate BETWEEN 0 AND 100),
    is_vip BOOLEAN DEFAULT FALSE,
    vip_since TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE deposits (
    id BIGSERIAL PRIMARY KEY,
    deposit_code VARCHAR(50) UNIQUE NOT NULL CHECK (deposit_code ~ '^DEP_[0-9]{8}_[A-Za-z0-9]+$'),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    amount DECIMAL(12,2) NOT NULL CHECK (amount > 0),
    currency VARCHAR(10) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    deposit_type VARCHAR(50) NOT NULL CHECK (deposit_type IN ('首金', '复入金', '大额入金')),
    platform VARCHAR(100),
    status VARCHAR(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'failed')),
    notes TEXT,
    deposited_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE withdrawals (
    id BIGSERIAL PRIMARY KEY,
    withdrawal_code VARCHAR(50) UNIQUE NOT NULL CHECK (withdrawal_code ~ '^WTH_[0-9]{8}_[A-Za-z0-9]+$'),
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    amount DECIMAL(12,2) NOT NULL CHECK (amount > 0),
    currency VARCHAR(10) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    reason VARCHAR(100) CHECK (reason IN ('盈利提现', '恐慌离场', '资金需求', '其他')),
    risk_level VARCHAR(20) CHECK (risk_level IN ('低', '中', '高')),
    retention_action TEXT,
    retention_success BOOLEAN,
    -- The seed gives only the default; the set mirrors deposits' lifecycle.
    status VARCHAR(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'failed')),
    requested_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE scripts (
    id BIGSERIAL PRIMARY KEY,
    script_code VARCHAR(50) UNIQUE NOT NULL,
    category VARCHAR(100) NOT NULL,
    subcategory VARCHAR(100),
    scenario VARCHAR(200),
    level VARCHAR(20) CHECK (level IN ('初级', '中级', '高级')),
    content_cn TEXT NOT NULL,
    content_en TEXT,
    purpose TEXT,
    follow_up JSONB,
    tags JSONB,
    usage_count INTEGER DEFAULT 0 CHECK (usage_count >= 0),
    success_count INTEGER DEFAULT 0 CHECK (success_count >= 0),
    success_rate DECIMAL(5,2) CHECK (success_rate BETWEEN 0 AND 100),
    avg_rating DECIMAL(3,2) CHECK (avg_rating BETWEEN 0 AND 5),
    is_active BOOLEAN DEFAULT TRUE,
    created_by BIGINT REFERENCES employees(id),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Partitioned by month on sent_at (section 5). Partitions are created by
-- ensure_conversation_partitions() (0004); the DEFAULT partition keeps any out-of-range row.
CREATE TABLE conversations (
    id BIGSERIAL,
    source_message_id VARCHAR(100) NOT NULL,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    message_type VARCHAR(20) NOT NULL CHECK (message_type IN ('text', 'image', 'voice', 'video')),
    direction VARCHAR(10) NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    content TEXT,
    media_url VARCHAR(500),
    sentiment VARCHAR(20) CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    keywords JSONB,
    intention_signals JSONB,
    risk_keywords JSONB,
    script_used_id BIGINT REFERENCES scripts(id),
    "is_反问" BOOLEAN DEFAULT FALSE,
    quality_score INTEGER CHECK (quality_score BETWEEN 1 AND 10),
    platform VARCHAR(50) CHECK (platform IN ('wechat', 'whatsapp', 'telegram')),
    sent_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, sent_at),
    UNIQUE (source_message_id, sent_at)
) PARTITION BY RANGE (sent_at);

CREATE TABLE conversations_default PARTITION OF conversations DEFAULT;

CREATE TABLE conversation_events (
    id BIGSERIAL PRIMARY KEY,
    source_key VARCHAR(100) UNIQUE NOT NULL,
    conversation_id BIGINT,
    -- A foreign key into a partitioned table must cover its partition key.
    conversation_sent_at TIMESTAMP,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    event_type VARCHAR(50) NOT NULL CHECK (event_type IN (
        '反问', '框架输出', '粘度建立', '推进动作', '高质量对话', '意向信号', '风险信号')),
    event_data JSONB,
    impact_score INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK ((conversation_id IS NULL) = (conversation_sent_at IS NULL)),
    FOREIGN KEY (conversation_id, conversation_sent_at) REFERENCES conversations (id, sent_at)
);

CREATE TABLE employee_kpis (
    id BIGSERIAL PRIMARY KEY,
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    date DATE NOT NULL,
    tofu_contacts INTEGER DEFAULT 0 CHECK (tofu_contacts >= 0),
    tofu_retained INTEGER DEFAULT 0 CHECK (tofu_retained >= 0),
    tofu_retention_rate DECIMAL(5,2) CHECK (tofu_retention_rate BETWEEN 0 AND 100),
    mofu_quality_conversations INTEGER DEFAULT 0 CHECK (mofu_quality_conversations >= 0),
    "mofu_反问_count" INTEGER DEFAULT 0 CHECK ("mofu_反问_count" >= 0),
    mofu_accounts_opened INTEGER DEFAULT 0 CHECK (mofu_accounts_opened >= 0),
    bofu_deposits_count INTEGER DEFAULT 0 CHECK (bofu_deposits_count >= 0),
    bofu_deposit_amount DECIMAL(12,2) DEFAULT 0 CHECK (bofu_deposit_amount >= 0),
    bofu_withdrawal_amount DECIMAL(12,2) DEFAULT 0 CHECK (bofu_withdrawal_amount >= 0),
    bofu_net_deposit DECIMAL(12,2) DEFAULT 0,
    bofu_withdrawal_rate DECIMAL(5,2) CHECK (bofu_withdrawal_rate >= 0),
    overall_score DECIMAL(5,2) CHECK (overall_score BETWEEN 0 AND 100),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (employee_id, date)
);

CREATE TABLE materials (
    id BIGSERIAL PRIMARY KEY,
    material_code VARCHAR(50) UNIQUE NOT NULL,
    type VARCHAR(20) NOT NULL CHECK (type IN ('image', 'video', 'text', 'mixed')),
    category VARCHAR(100) NOT NULL,
    subcategory VARCHAR(100),
    title VARCHAR(200),
    content TEXT,
    media_url VARCHAR(500),
    thumbnail_url VARCHAR(500),
    caption TEXT,
    hashtags JSONB,
    purpose TEXT,
    suitable_stages JSONB,
    views INTEGER DEFAULT 0 CHECK (views >= 0),
    likes INTEGER DEFAULT 0 CHECK (likes >= 0),
    comments INTEGER DEFAULT 0 CHECK (comments >= 0),
    shares INTEGER DEFAULT 0 CHECK (shares >= 0),
    published_count INTEGER DEFAULT 0 CHECK (published_count >= 0),
    tags JSONB,
    is_active BOOLEAN DEFAULT TRUE,
    created_by BIGINT REFERENCES employees(id),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE training_courses (
    id BIGSERIAL PRIMARY KEY,
    course_code VARCHAR(50) UNIQUE NOT NULL,
    title VARCHAR(200) NOT NULL,
    description TEXT,
    course_type VARCHAR(50) NOT NULL CHECK (course_type IN ('7天上手', '30天成才', '90天中坚')),
    level VARCHAR(20) CHECK (level IN ('新人', '进阶', '高级')),
    duration_days INTEGER CHECK (duration_days > 0),
    content JSONB,
    is_required BOOLEAN DEFAULT FALSE,
    display_order INTEGER DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE training_progress (
    id BIGSERIAL PRIMARY KEY,
    employee_id BIGINT NOT NULL REFERENCES employees(id),
    course_id BIGINT NOT NULL REFERENCES training_courses(id),
    status VARCHAR(20) NOT NULL DEFAULT 'not_started'
        CHECK (status IN ('not_started', 'in_progress', 'completed', 'failed')),
    progress_percentage INTEGER DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    score DECIMAL(5,2) CHECK (score BETWEEN 0 AND 100),
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (employee_id, course_id)
);

CREATE TABLE system_settings (
    id BIGSERIAL PRIMARY KEY,
    key VARCHAR(100) UNIQUE NOT NULL,
    value TEXT,
    value_type VARCHAR(20) CHECK (value_type IN ('string', 'number', 'boolean', 'json')),
    category VARCHAR(100),
    description TEXT,
    is_public BOOLEAN DEFAULT FALSE,
    updated_by BIGINT REFERENCES employees(id),
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
