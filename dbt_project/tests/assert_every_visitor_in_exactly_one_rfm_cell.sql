{{ config(meta={'dagster': {'ref': {'name': 'customer_rfm'}}}) }}
-- Every customer with a completed visit up to the as-of date is in customer_rfm exactly
-- once, in one of the 27 cells. Returns the customers for whom that is not true.
with visitors as (
    select distinct business_id, customer_id
    from {{ ref('fct_visits') }}
    where visited_at < {{ as_of_end() }}
),

cells as (
    select business_id, customer_id, count() as rows, any(rfm_cell) as rfm_cell
    from {{ ref('customer_rfm') }}
    group by business_id, customer_id
)

select v.business_id, v.customer_id, c.rows, c.rfm_cell
from visitors as v
left join cells as c on v.business_id = c.business_id and v.customer_id = c.customer_id
where c.rows != 1
    or c.rfm_cell not in (select rfm_cell from {{ ref('rfm_segment_map') }})
