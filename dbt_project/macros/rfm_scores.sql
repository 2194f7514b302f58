{#- RFM of every customer at each of several snapshot dates: the one definition shared by
    customer_rfm (one snapshot: the as-of date) and rfm_segment_history (month ends and
    the as-of date), so the history scores customers exactly as customer_rfm does.

    `visits`: a relation or CTE with business_id, customer_id, visited_at, amount.
    `snapshot_dates`: a SQL expression of type Array(Date).

    A snapshot counts the visits strictly before the end of its day (UTC, like
    as_of_end); recency is days from the last of them, frequency and monetary cover the
    `rfm_window_days` (default 365) days up to the snapshot date. Scores are terciles
    within the business and snapshot (tercile_score). Each visit is expanded to the
    snapshots it precedes (arrayJoin), so one pass over the visits serves every
    snapshot. Returns one row per (snapshot_date, business_id, customer_id) of the
    customers with a visit before the snapshot, with the customer_rfm columns. -#}
{% macro rfm_scores(visits, snapshot_dates) -%}
{%- set window_days = var('rfm_window_days', 365) -%}
select
    s.snapshot_date as snapshot_date,
    s.business_id as business_id,
    s.customer_id as customer_id,
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
from (
    select
        *,
        {{ tercile_score('recency_days', 'desc', 'business_id, snapshot_date') }} as r_score,
        {{ tercile_score('frequency', 'asc', 'business_id, snapshot_date') }} as f_score,
        {{ tercile_score('monetary', 'asc', 'business_id, snapshot_date') }} as m_score
    from (
        select
            snapshot_date,
            business_id,
            customer_id,
            max(visited_at) as last_visit_at,
            toUInt32(dateDiff('day', toDate(max(visited_at)), snapshot_date)) as recency_days,
            toUInt32(countIf(toDate(visited_at) > snapshot_date - {{ window_days }}))
                as frequency,
            -- A customer with no visit in the window has monetary 0 (never NULL: NULLs
            -- would rank as the best spenders).
            toDecimal128(
                sumIf(amount, toDate(visited_at) > snapshot_date - {{ window_days }}), 2
            ) as monetary
        from (
            select
                business_id,
                customer_id,
                visited_at,
                amount,
                arrayJoin(arrayFilter(
                    d -> visited_at < toDateTime64(d + 1, 3, 'UTC'), {{ snapshot_dates }}
                )) as snapshot_date
            from {{ visits }}
        )
        group by snapshot_date, business_id, customer_id
    )
) as s
inner join {{ ref('rfm_segment_map') }} as m
    on concat('R', toString(s.r_score), 'F', toString(s.f_score), 'M', toString(s.m_score))
        = m.rfm_cell
{%- endmacro %}
