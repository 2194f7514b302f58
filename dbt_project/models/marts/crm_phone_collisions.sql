-- CRM customer records of one business whose phones normalise to the same E.164 number:
-- the models merge them into one customer (customer_id is the phone's hash), and
-- dim_customers describes them by the most recently updated record. One row per record
-- of such a group, so a data steward can see which CRM records were merged and fix the
-- duplicates (or the mistyped phone) at the source.
with customers as (
    select business_id, source_customer_id, customer_id, phone_e164, full_name, created_at, updated_at
    from {{ ref('stg_crm__customers') }}
),

groups as (
    select
        business_id,
        customer_id,
        count() as records,
        -- The record dim_customers takes its name, birthday and consent from.
        argMax(source_customer_id, updated_at) as describing_source_customer_id,
        arraySort(groupArray(source_customer_id)) as source_customer_ids
    from customers
    group by business_id, customer_id
    having records > 1
)

select
    c.business_id as business_id,
    c.customer_id as customer_id,
    c.phone_e164 as phone_e164,
    c.source_customer_id as source_customer_id,
    c.full_name as full_name,
    c.created_at as created_at,
    c.updated_at as updated_at,
    toUInt64(g.records) as records,
    g.source_customer_ids as merged_source_customer_ids,
    toBool(c.source_customer_id = g.describing_source_customer_id) as describes_customer
from customers as c
inner join groups as g
    on {{ join_key('c.business_id', 'c.customer_id') }}
        = {{ join_key('g.business_id', 'g.customer_id') }}
