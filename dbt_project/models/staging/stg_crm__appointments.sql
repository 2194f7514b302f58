-- The latest live version of every appointment: a version the CRM flagged deleted
-- (`is_deleted`, its soft delete) removes the appointment here, and for every model below.
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
    updated_at,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_appointments') }} final
where not is_deleted
