-- Every loaded version of every CRM appointment (no FINAL: superseded versions and soft
-- deletes included), with the fields whose history point-in-time features need. Read
-- only by the incremental int_appointment_versions, which keeps these versions after
-- the raw ReplacingMergeTree has merged them away.
select
    business_id,
    appointment_id,
    source_customer_id,
    status,
    scheduled_at,
    created_at,
    updated_at,
    is_deleted,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_appointments') }}
