-- One row per customer per snapshot date: the RFM cell and segment of every customer at
-- each of the last `rfm_history_months` (default 12) month ends before the as-of date,
-- and at the as-of date itself, scored by the same rfm_scores macro as customer_rfm.
-- Month ends are UTC dates, like customer_rfm's as-of date.
--
-- A table rebuilt from fct_visits on every run rather than an incremental log of past
-- runs: the first build already has a year of history (so rfm_segment_migration is not
-- empty after one run), late or corrected visits rewrite the months they belong to, and
-- an incremental build can never disagree with a full refresh.
--
-- optimize_aggregation_in_order: as in customer_rfm, the per-customer aggregation of
-- rfm_scores streams in fct_visits' (business_id, customer_id) order.
{{
    config(
        materialized='table',
        engine='MergeTree',
        order_by='(business_id, snapshot_date, customer_id)',
        query_settings=bulk_insert_settings({'optimize_aggregation_in_order': 1}),
    )
}}
{% set months = var('rfm_history_months', 12) %}
{% set snapshot_dates %}
    arraySort(arrayDistinct(arrayConcat(
        arrayMap(i -> toLastDayOfMonth(addMonths({{ as_of_date() }}, -i)), range(1, {{ months + 1 }})),
        [{{ as_of_date() }}]
    )))
{% endset %}

select
    toString(snapshot_date) || ':' || business_id || ':' || customer_id as snapshot_key,
    snapshot_date,
    toBool(snapshot_date = toLastDayOfMonth(snapshot_date)) as is_month_end,
    business_id,
    customer_id,
    rfm_cell,
    segment,
    recency_days,
    frequency,
    monetary
from ({{ rfm_scores(ref('fct_visits'), snapshot_dates=snapshot_dates) }})
