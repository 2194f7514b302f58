-- The latest live version of every customer: a version the CRM flagged deleted
-- (`is_deleted`, its soft delete) removes the customer (and so their appointments) here.
select
    business_id,
    source_customer_id,
    customer_id,
    phone_e164,
    full_name,
    birthday,
    gender,
    consent_marketing,
    created_at,
    updated_at,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_customers') }} final
where not is_deleted
