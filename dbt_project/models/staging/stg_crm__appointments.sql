select
    business_id,
    appointment_id,
    source_customer_id,
    location_id,
    service_id,
    status,
    scheduled_at,
    amount,
    currency,
    offer_id,
    created_at,
    updated_at
from {{ source('crm', 'crm_appointments') }} final
