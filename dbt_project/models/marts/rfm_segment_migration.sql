-- Customers moving between segments from one snapshot date to the next, per business.
-- `from_segment` is 'none' for customers who were not in the previous snapshot.
with snapshots as (
    select distinct business_id, snapshot_date
    from {{ ref('rfm_segment_history') }}
),

pairs as (
    select
        business_id,
        snapshot_date as to_date,
        lagInFrame(snapshot_date) over (
            partition by business_id order by snapshot_date
            rows between unbounded preceding and unbounded following
        ) as from_date,
        row_number() over (partition by business_id order by snapshot_date) as n
    from snapshots
),

history as (
    select business_id, snapshot_date, customer_id, segment
    from {{ ref('rfm_segment_history') }}
)

select
    p.business_id as business_id,
    p.from_date as from_date,
    p.to_date as to_date,
    if(prev.customer_id = '', 'none', prev.segment) as from_segment,
    cur.segment as to_segment,
    count() as customers
from pairs as p
inner join history as cur on cur.business_id = p.business_id and cur.snapshot_date = p.to_date
left join history as prev
    on prev.business_id = p.business_id
    and prev.snapshot_date = p.from_date
    and prev.customer_id = cur.customer_id
where p.n > 1
group by business_id, from_date, to_date, from_segment, to_segment
