-- Every appointment in every status (scheduled, completed, cancelled, no-show) with the
-- customer's identity, when it was booked and last changed: int_appointments as the
-- marts publish it. A view: nothing to build, and readers see the latest CRM state.
select
    appointment_key,
    business_id,
    appointment_id,
    customer_id,
    location_id,
    service_id,
    status,
    scheduled_at,
    amount,
    currency,
    offer_id,
    created_at,
    updated_at
from {{ ref('int_appointments') }}
