-- One row per (business_id, customer_id) with at least one completed visit up to the
-- as-of date: recency, frequency and monetary value, their tercile scores within the
-- business (see the tercile_score macro for the tie rule), the RFM cell and its segment.
{% set window_days = var('rfm_window_days', 365) %}

with visits as (
    select business_id, customer_id, visited_at, amount
    from {{ ref('fct_visits') }}
    where visited_at < {{ as_of_end() }}
),

measures as (
    select
        business_id,
        customer_id,
        max(visited_at) as last_visit_at,
        toUInt32(dateDiff('day', toDate(max(visited_at)), {{ as_of_date() }})) as recency_days,
        toUInt32(countIf(toDate(visited_at) > {{ as_of_date() }} - {{ window_days }}))
            as frequency,
        -- A customer with no visit in the window has monetary 0 (never NULL: NULLs
        -- would rank as the best spenders).
        toDecimal128(
            sumIf(amount, toDate(visited_at) > {{ as_of_date() }} - {{ window_days }}), 2
        ) as monetary
    from visits
    group by business_id, customer_id
),

scored as (
    select
        *,
        {{ tercile_score('recency_days', 'desc') }} as r_score,
        {{ tercile_score('frequency', 'asc') }} as f_score,
        {{ tercile_score('monetary', 'asc') }} as m_score
    from measures
)

select
    s.business_id as business_id,
    s.customer_id as customer_id,
    {{ as_of_date() }} as as_of_date,
    s.last_visit_at as last_visit_at,
    s.recency_days as recency_days,
    s.frequency as frequency,
    s.monetary as monetary,
    s.r_score as r_score,
    s.f_score as f_score,
    s.m_score as m_score,
    concat('R', toString(s.r_score), 'F', toString(s.f_score), 'M', toString(s.m_score))
        as rfm_cell,
    m.segment as segment
from scored as s
inner join {{ ref('rfm_segment_map') }} as m
    on concat('R', toString(s.r_score), 'F', toString(s.f_score), 'M', toString(s.m_score))
        = m.rfm_cell
