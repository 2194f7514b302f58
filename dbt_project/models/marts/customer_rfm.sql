-- One row per (business_id, customer_id) with at least one completed visit up to the
-- as-of date: recency, frequency and monetary value, their tercile scores within the
-- business (see the tercile_score macro for the tie rule), the RFM cell and its segment.
-- The definition lives in the rfm_scores macro, shared with rfm_segment_history.
--
-- optimize_aggregation_in_order: fct_visits is sorted by (business_id, customer_id,
-- ...), so the per-customer group-by streams in that order with no hash table of a
-- million customers (about 40% less CPU on 20M visits, benchmarks/bench_peers.py).
{{ config(query_settings={'optimize_aggregation_in_order': 1}) }}
select
    business_id,
    customer_id,
    snapshot_date as as_of_date,
    last_visit_at,
    recency_days,
    frequency,
    monetary,
    r_score,
    f_score,
    m_score,
    rfm_cell,
    segment
from ({{ rfm_scores(ref('fct_visits'), snapshot_date=as_of_date()) }})
