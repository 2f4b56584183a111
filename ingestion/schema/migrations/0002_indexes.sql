-- Every index of the seed: its inline INDEX clauses (section 2, MySQL syntax there) and section 4.
-- PostgreSQL index names share one namespace per schema, so the seed's names get a table prefix.
-- Some duplicate the index behind a UNIQUE constraint (customer_code, employee_code, employee/date);
-- they are kept because the seed asks for them.

-- customers
CREATE INDEX idx_customers_customer_code ON customers (customer_code);
CREATE INDEX idx_customers_assigned_employee ON customers (assigned_employee_id);
CREATE INDEX idx_customers_tier ON customers (tier);
CREATE INDEX idx_customers_current_stage ON customers (current_stage);
CREATE INDEX idx_customers_intention_score ON customers (intention_score);
CREATE INDEX idx_customers_created_at ON customers (created_at);
-- customer_tags
CREATE INDEX idx_customer_tags_customer_id ON customer_tags (customer_id);
CREATE INDEX idx_customer_tags_tag_id ON customer_tags (tag_id);
-- tags
CREATE INDEX idx_tags_category ON tags (category);
-- customer_journey
CREATE INDEX idx_customer_journey_customer_id ON customer_journey (customer_id);
CREATE INDEX idx_customer_journey_to_stage ON customer_journey (to_stage);
CREATE INDEX idx_customer_journey_created_at ON customer_journey (created_at);
-- funnel_tofu
CREATE INDEX idx_funnel_tofu_customer_id ON funnel_tofu (customer_id);
CREATE INDEX idx_funnel_tofu_employee_id ON funnel_tofu (employee_id);
CREATE INDEX idx_funnel_tofu_contact_date ON funnel_tofu (contact_date);
CREATE INDEX idx_funnel_tofu_source_channel ON funnel_tofu (source_channel);
-- funnel_mofu
CREATE INDEX idx_funnel_mofu_customer_id ON funnel_mofu (customer_id);
CREATE INDEX idx_funnel_mofu_employee_id ON funnel_mofu (employee_id);
CREATE INDEX idx_funnel_mofu_account_opened ON funnel_mofu (account_opened);
-- funnel_bofu
CREATE INDEX idx_funnel_bofu_customer_id ON funnel_bofu (customer_id);
CREATE INDEX idx_funnel_bofu_employee_id ON funnel_bofu (employee_id);
CREATE INDEX idx_funnel_bofu_net_deposit ON funnel_bofu (net_deposit);
-- deposits
CREATE INDEX idx_deposits_customer_id ON deposits (customer_id);
CREATE INDEX idx_deposits_employee_id ON deposits (employee_id);
CREATE INDEX idx_deposits_deposited_at ON deposits (deposited_at);
CREATE INDEX idx_deposits_deposit_type ON deposits (deposit_type);
-- withdrawals
CREATE INDEX idx_withdrawals_customer_id ON withdrawals (customer_id);
CREATE INDEX idx_withdrawals_risk_level ON withdrawals (risk_level);
CREATE INDEX idx_withdrawals_requested_at ON withdrawals (requested_at);
-- conversations (partitioned: each index is created on every partition, present and future)
CREATE INDEX idx_conversations_customer_id ON conversations (customer_id);
CREATE INDEX idx_conversations_employee_id ON conversations (employee_id);
CREATE INDEX idx_conversations_sent_at ON conversations (sent_at);
CREATE INDEX idx_conversations_sentiment ON conversations (sentiment);
-- conversation_events
CREATE INDEX idx_conversation_events_customer_id ON conversation_events (customer_id);
CREATE INDEX idx_conversation_events_event_type ON conversation_events (event_type);
CREATE INDEX idx_conversation_events_created_at ON conversation_events (created_at);
-- employees
CREATE INDEX idx_employees_employee_code ON employees (employee_code);
CREATE INDEX idx_employees_role ON employees (role);
CREATE INDEX idx_employees_level ON employees (level);
-- employee_kpis
CREATE INDEX idx_employee_kpis_employee_date ON employee_kpis (employee_id, date);
CREATE INDEX idx_employee_kpis_date ON employee_kpis (date);
-- scripts
CREATE INDEX idx_scripts_category ON scripts (category);
CREATE INDEX idx_scripts_success_rate ON scripts (success_rate);
-- materials
CREATE INDEX idx_materials_category ON materials (category);
CREATE INDEX idx_materials_type ON materials (type);
-- training_progress
CREATE INDEX idx_training_progress_employee_id ON training_progress (employee_id);
CREATE INDEX idx_training_progress_status ON training_progress (status);

-- Section 4: key composite indexes (names as in the seed).
CREATE INDEX idx_customers_tier_stage ON customers (tier, current_stage);
CREATE INDEX idx_customers_employee_status ON customers (assigned_employee_id, status);
CREATE INDEX idx_conversations_customer_time ON conversations (customer_id, sent_at DESC);
CREATE INDEX idx_deposits_employee_time ON deposits (employee_id, deposited_at DESC);
CREATE INDEX idx_employee_kpis_date_range ON employee_kpis (date DESC, employee_id);
