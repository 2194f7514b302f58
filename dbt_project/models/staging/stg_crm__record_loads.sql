-- Every version of every CRM appointment and customer as it was loaded, including
-- superseded versions and the CRM's soft deletes: the change feed the load-time
-- incremental marts read (macros/incremental_changes.sql). No FINAL: a run only needs
-- which records were (re)loaded after its watermark, and that is a range read on
-- `_loaded_at`, not a merge of every version.
select
    'appointment' as entity,
    business_id,
    appointment_id as record_id,
    is_deleted,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_appointments') }}
union all
select
    'customer' as entity,
    business_id,
    source_customer_id as record_id,
    is_deleted,
    _loaded_at as loaded_at
from {{ source('crm', 'crm_customers') }}
