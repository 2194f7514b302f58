select
    business_id,
    name as business_name,
    kind as business_kind,
    country,
    city,
    timezone,
    currency,
    updated_at
from {{ source('crm', 'crm_businesses') }} final
