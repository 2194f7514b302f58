-- Every loaded version of every CRM customer (no FINAL), with the fields whose history
-- point-in-time features need (marketing consent). Read only by the incremental
-- int_customer_consent_history.
select
    business_id,
    source_customer_id,
    customer_id,
    consent_marketing,
    created_at,
    updated_at,
    is_deleted,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_customers') }}
