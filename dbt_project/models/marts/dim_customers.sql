with visits as (
    select
        business_id,
        customer_id,
        min(visited_at) as first_visit_at,
        max(visited_at) as last_visit_at,
        count() as visits,
        sum(amount) as revenue
    from {{ ref('fct_visits') }} final
    group by business_id, customer_id
),

customers as (
    -- One CRM customer record per phone: the most recently updated one wins.
    select
        business_id,
        customer_id,
        argMax(phone_e164, updated_at) as phone_e164,
        argMax(full_name, updated_at) as full_name,
        argMax(birthday, updated_at) as birthday,
        argMax(consent_marketing, updated_at) as consent_marketing
    from {{ ref('stg_crm__customers') }}
    group by business_id, customer_id
)

select
    c.business_id as business_id,
    c.customer_id as customer_id,
    c.phone_e164 as phone_e164,
    c.full_name as full_name,
    c.birthday as birthday,
    b.timezone as timezone,
    c.consent_marketing as consent_marketing,
    v.first_visit_at as first_visit_at,
    v.last_visit_at as last_visit_at,
    coalesce(v.visits, 0) as visits,
    coalesce(v.revenue, toDecimal128(0, 2)) as revenue
from customers as c
left join visits as v on c.business_id = v.business_id and c.customer_id = v.customer_id
left join {{ ref('stg_crm__businesses') }} as b on c.business_id = b.business_id
