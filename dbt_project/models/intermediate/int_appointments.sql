select
    a.business_id || ':' || a.appointment_id as appointment_key,
    a.business_id as business_id,
    a.appointment_id as appointment_id,
    c.customer_id as customer_id,
    a.location_id as location_id,
    a.service_id as service_id,
    a.status as status,
    a.scheduled_at as scheduled_at,
    a.amount as amount,
    a.currency as currency,
    a.offer_id as offer_id,
    a.created_at as created_at,
    a.updated_at as updated_at,
    -- The row depends on both source rows: it changed when either was (re)loaded.
    greatest(a.loaded_at, c.loaded_at) as loaded_at
from {{ ref('stg_crm__appointments') }} as a
inner join {{ ref('stg_crm__customers') }} as c
    -- One string key per side (see the join_key macro): same rows as joining on the pair.
    on {{ join_key('a.business_id', 'a.source_customer_id') }}
        = {{ join_key('c.business_id', 'c.source_customer_id') }}
