-- Customers moving between segments from one snapshot date to the next, per business.
-- `from_segment` is 'none' for customers who were not in the previous snapshot.
--
-- Each customer's snapshots are gathered into arrays (one row per customer) and paired
-- with their business's consecutive snapshot dates there, rather than joining the
-- history to itself on (business, date, customer): that join hashed every one of its
-- rows, twelve per customer (about 3x the CPU).
with business_snapshots as (
    select business_id, arraySort(groupUniqArray(snapshot_date)) as snapshot_dates
    from {{ ref('rfm_segment_history') }}
    group by business_id
),

customer_snapshots as (
    select
        business_id,
        customer_id,
        groupArray(snapshot_date) as dates,
        groupArray(segment) as segments
    from {{ ref('rfm_segment_history') }}
    group by business_id, customer_id
),

moves as (
    -- One row per customer and pair of consecutive snapshot dates of the business
    -- (from_date, to_date) with the customer in the to_date snapshot; from_index is the
    -- customer's position in the from_date snapshot, 0 when absent.
    select
        c.business_id as business_id,
        c.segments as segments,
        arrayJoin(arrayFilter(
            pair -> pair.4 > 0,
            arrayMap(
                (from_date, to_date) -> (
                    from_date, to_date, indexOf(c.dates, from_date), indexOf(c.dates, to_date)
                ),
                arrayPopBack(b.snapshot_dates),
                arrayPopFront(b.snapshot_dates)
            )
        )) as pair
    from customer_snapshots as c
    inner join business_snapshots as b on c.business_id = b.business_id
)

select
    business_id,
    pair.1 as from_date,
    pair.2 as to_date,
    if(pair.3 = 0, 'none', segments[pair.3]) as from_segment,
    segments[pair.4] as to_segment,
    count() as customers
from moves
group by business_id, from_date, to_date, from_segment, to_segment
