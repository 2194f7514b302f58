{#- RFM of every customer at one snapshot date or at several: the one definition shared
    by customer_rfm (one snapshot, the as-of date: `snapshot_date`) and
    rfm_segment_history (month ends and the as-of date: `snapshot_dates`), so the
    history scores customers exactly as customer_rfm does.

    `visits`: a relation or CTE with business_id, customer_id, visited_at, amount.
    `snapshot_date`: a SQL expression of type Date, or
    `snapshot_dates`: a SQL expression of type Array(Date) — exactly one of the two.

    A snapshot counts the visits strictly before the end of its day (UTC, like
    as_of_end); recency is days from the last of them, frequency and monetary cover the
    `rfm_window_days` (default 365) days up to the snapshot date (the visits from the
    start of day snapshot - (window - 1), compared on the raw DateTime64 rather than
    converting every visit to a Date). Scores are terciles within the business and
    snapshot (tercile_score, on the arrays of the business's customers), the segment
    comes from rfm_segment_map. Returns one row per (snapshot_date, business_id,
    customer_id) of the customers with a visit before the snapshot, with the
    customer_rfm columns.

    The two forms differ only in how the per-customer measures are aggregated; both
    group by (business_id, customer_id), the sort order of fct_visits, so the group-by
    can stream in that order with no hash table (setting optimize_aggregation_in_order,
    set by both models). One snapshot filters the visits. Several snapshots aggregate
    arrays with one element per snapshot (-ForEach): a visit adds to the frequency and
    monetary of the snapshots whose window holds it (its in-window flags are computed
    once, against the snapshots' bounds computed once per query) and to the last visit
    of those it precedes; the array is then joined out to one row per snapshot the
    customer has a visit before. Expanding each visit to the snapshots it precedes
    (arrayJoin, 130M rows on 14M visits) and hashing (snapshot, business, customer)
    cost twice the CPU. -#}
{% macro rfm_scores(visits, snapshot_date=none, snapshot_dates=none) -%}
{%- if (snapshot_date is none) == (snapshot_dates is none) -%}
    {{ exceptions.raise_compiler_error("rfm_scores: give snapshot_date or snapshot_dates, not both or neither") }}
{%- endif -%}
{%- set window_days = var('rfm_window_days', 365) | int -%}
{%- set window_start = "toDateTime64(snapshot_date - " ~ (window_days - 1) ~ ", 3, 'UTC')" -%}
{%- set window_start_of_d = "toDateTime64(d - " ~ (window_days - 1) ~ ", 3, 'UTC')" -%}
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
    s.rfm_cell as rfm_cell,
    m.segment as segment
from (
    select
        snapshot_date,
        business_id,
        customer_id,
        last_visit_at,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        concat('R', toString(r_score), 'F', toString(f_score), 'M', toString(m_score)) as rfm_cell
    from (
        select
            snapshot_date,
            business_id,
            groupArray(customer_id) as customer_ids,
            groupArray(last_visit_at) as last_visits,
            groupArray(recency_days) as recencies,
            groupArray(frequency) as frequencies,
            groupArray(monetary) as monetaries,
            {{ tercile_score('recencies', 'desc') }} as r_scores,
            {{ tercile_score('frequencies', 'asc') }} as f_scores,
            {{ tercile_score('monetaries', 'asc') }} as m_scores
        from (
            {%- if snapshot_date is not none %}
            select
                {{ snapshot_date }} as snapshot_date,
                business_id,
                customer_id,
                max(visited_at) as last_visit_at,
                toUInt32(dateDiff('day', toDate(last_visit_at), snapshot_date)) as recency_days,
                toUInt32(countIf(visited_at >= {{ window_start }})) as frequency,
                -- A customer with no visit in the window has monetary 0 (never NULL: NULLs
                -- would rank as the best spenders).
                toDecimal128(sumIf(amount, visited_at >= {{ window_start }}), 2) as monetary
            -- The group-by keys are exactly (business_id, customer_id), the visits'
            -- sort order: a constant snapshot key would make the in-order aggregation
            -- fall back to hashing within each run of equal keys (twice the CPU).
            from {{ visits }}
            where visited_at < toDateTime64({{ snapshot_date }} + 1, 3, 'UTC')
            group by business_id, customer_id
            {%- else %}
            select
                snapshot_date,
                business_id,
                customer_id,
                last_visit_at,
                toUInt32(dateDiff('day', toDate(last_visit_at), snapshot_date)) as recency_days,
                toUInt32(visits_in_window) as frequency,
                -- 0 without a visit in the window, as above.
                toDecimal128(amount_in_window, 2) as monetary
            from (
                select
                    business_id,
                    customer_id,
                    {{ snapshot_dates }} as snapshot_dates,
                    min(visited_at) as first_visit_at,
                    -- Visits after a snapshot count as the earliest DateTime64 there, which
                    -- no visit precedes; snapshots before the first visit are dropped below.
                    maxForEach(arrayMap(
                        end_ -> if(visited_at < end_, visited_at, toDateTime64('1900-01-01 00:00:00', 3, 'UTC')),
                        snapshot_ends
                    )) as last_visits,
                    sumForEach(in_window) as visit_counts,
                    sumForEach(arrayMap(flag -> flag * amount, in_window)) as amounts
                from (
                    select
                        business_id,
                        customer_id,
                        visited_at,
                        amount,
                        arrayMap(d -> toDateTime64(d + 1, 3, 'UTC'), {{ snapshot_dates }}) as snapshot_ends,
                        arrayMap(
                            (end_, start_) -> toUInt8(visited_at < end_ and visited_at >= start_),
                            snapshot_ends,
                            arrayMap(d -> {{ window_start_of_d }}, {{ snapshot_dates }})
                        ) as in_window
                    from {{ visits }}
                )
                group by business_id, customer_id
            )
            array join
                snapshot_dates as snapshot_date,
                last_visits as last_visit_at,
                visit_counts as visits_in_window,
                amounts as amount_in_window
            where first_visit_at < toDateTime64(snapshot_date + 1, 3, 'UTC')
            {%- endif %}
        )
        group by snapshot_date, business_id
    )
    array join
        customer_ids as customer_id,
        last_visits as last_visit_at,
        recencies as recency_days,
        frequencies as frequency,
        monetaries as monetary,
        r_scores as r_score,
        f_scores as f_score,
        m_scores as m_score
) as s
inner join {{ ref('rfm_segment_map') }} as m on s.rfm_cell = m.rfm_cell
{%- endmacro %}
