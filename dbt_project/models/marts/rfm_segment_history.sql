-- One row per customer per snapshot date: each run records the as-of snapshot of
-- customer_rfm; rerunning a date replaces that date's rows.
{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree',
        order_by='(business_id, snapshot_date, customer_id)',
        unique_key='snapshot_key',
        incremental_strategy='delete+insert',
    )
}}

select
    toString(as_of_date) || ':' || business_id || ':' || customer_id as snapshot_key,
    as_of_date as snapshot_date,
    business_id,
    customer_id,
    rfm_cell,
    segment,
    recency_days,
    frequency,
    monetary
from {{ ref('customer_rfm') }}
