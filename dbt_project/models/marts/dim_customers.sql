-- One row per (business_id, customer_id): who the customer is and their history with
-- the business, as of the run.
with visits as (
    select
        business_id,
        customer_id,
        min(visited_at) as first_visit_at,
        max(visited_at) as last_visit_at,
        count() as visits,
        sum(amount) as revenue
    from {{ ref('fct_visits') }}
    group by business_id, customer_id
),

customers as (
    -- Several CRM records can share a phone: the most recently updated one describes them.
    select
        business_id,
        customer_id,
        argMax(phone_e164, updated_at) as phone_e164,
        argMax(full_name, updated_at) as full_name,
        argMax(birthday, updated_at) as birthday,
        argMax(gender, updated_at) as gender,
        argMax(consent_marketing, updated_at) as consent_marketing,
        min(created_at) as created_at
    from {{ ref('stg_crm__customers') }}
    group by business_id, customer_id
),

upcoming as (
    select business_id, customer_id, min(scheduled_at) as next_appointment_at
    from {{ ref('int_appointments') }}
    where status = 'scheduled' and scheduled_at >= {{ as_of_end() }}
    group by business_id, customer_id
),

opt_outs as (
    -- Opted out on any channel that reaches this phone.
    select phone_e164, min(first_opt_out_at) as opted_out_at
    from {{ ref('int_opt_outs') }}
    where opted_out
    group by phone_e164
)

select
    c.business_id as business_id,
    c.customer_id as customer_id,
    c.phone_e164 as phone_e164,
    c.full_name as full_name,
    c.birthday as birthday,
    c.gender as gender,
    b.business_kind as business_kind,
    b.timezone as timezone,
    b.currency as currency,
    c.consent_marketing as consent_marketing,
    o.phone_e164 != '' as opted_out,
    if(o.phone_e164 != '', o.opted_out_at, null) as opted_out_at,
    c.consent_marketing and o.phone_e164 = '' as contactable,
    c.created_at as created_at,
    if(v.visits > 0, v.first_visit_at, null) as first_visit_at,
    if(v.visits > 0, v.last_visit_at, null) as last_visit_at,
    v.visits as visits,
    if(v.visits > 0, v.revenue, toDecimal128(0, 2)) as revenue,
    if(u.customer_id != '', u.next_appointment_at, null) as next_appointment_at
from customers as c
-- (business_id, customer_id) as one string key: see the join_key macro.
left join visits as v
    on {{ join_key('c.business_id', 'c.customer_id') }}
        = {{ join_key('v.business_id', 'v.customer_id') }}
left join {{ ref('stg_crm__businesses') }} as b on c.business_id = b.business_id
left join upcoming as u
    on {{ join_key('c.business_id', 'c.customer_id') }}
        = {{ join_key('u.business_id', 'u.customer_id') }}
left join opt_outs as o on c.phone_e164 = o.phone_e164
