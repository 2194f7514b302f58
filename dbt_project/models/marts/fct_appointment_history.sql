-- Every known version of every appointment, with the customer's identity and the
-- interval it was the CRM's state: valid from its `updated_at` until the next version's
-- (null: still current). Point-in-time ML features read the version valid at a cutoff,
-- so an appointment rescheduled, cancelled or deleted after the cutoff shows its state
-- as of the cutoff. A view: the history itself is int_appointment_versions.
select
    v.business_id || ':' || v.appointment_id as appointment_key,
    v.business_id as business_id,
    v.appointment_id as appointment_id,
    c.customer_id as customer_id,
    v.status as status,
    v.scheduled_at as scheduled_at,
    v.created_at as created_at,
    v.updated_at as valid_from,
    leadInFrame(toNullable(v.updated_at)) over (
        partition by v.business_id, v.appointment_id
        order by v.updated_at
        rows between unbounded preceding and unbounded following
    ) as valid_to,
    v.is_deleted as is_deleted
from {{ ref('int_appointment_versions') }} as v final
inner join {{ ref('stg_crm__customers') }} as c
    on {{ join_key('v.business_id', 'v.source_customer_id') }}
        = {{ join_key('c.business_id', 'c.source_customer_id') }}
