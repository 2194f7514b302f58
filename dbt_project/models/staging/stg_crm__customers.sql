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
    updated_at
from {{ source('crm', 'crm_customers') }} final
