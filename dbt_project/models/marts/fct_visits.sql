{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree(updated_at)',
        order_by='(business_id, customer_id, appointment_key)',
        incremental_strategy='append',
        pre_hook="{{ delete_changed_keys('appointment_key', fct_visits_changed_keys(incremental_since())) }}",
        query_settings=bulk_insert_settings({'optimize_on_insert': 0}),
    )
}}
{#- Incremental on load time (see macros/incremental_changes.sql): each run deletes the
    visits of every appointment whose appointment or customer row was loaded since the
    last one, then inserts those that are completed visits now — so a visit the CRM
    cancels or deletes leaves, and a late record with an older `updated_at` arrives.
    optimize_on_insert off: an inserted batch never repeats a key (one row per
    appointment; the unique test checks it), so collapsing duplicates within the block
    on insert would only cost a pass over every row.
    Sorted by (business_id, customer_id, appointment_key): the RFM and per-customer
    marts group by (business_id, customer_id) and can then aggregate in the table's
    order (customer_rfm) instead of through a hash table of every customer. The key
    still ends in appointment_key, so replacing never merges two appointments; and
    uniqueness per appointment_key never rested on the replacing key: every run deletes
    all rows of each key it re-derives before inserting them once, so a visit moved to
    another customer leaves no row under the old one. A table built with the former
    order keeps it (and gives correct results) until `--full-refresh`. -#}

select
    appointment_key,
    business_id,
    appointment_id,
    customer_id,
    location_id,
    service_id,
    scheduled_at as visited_at,
    assumeNotNull(amount) as amount,
    currency,
    offer_id,
    updated_at,
    loaded_at
from {{ ref('int_appointments') }}
where status = 'completed' and amount is not null
{% if is_incremental() %}
    and appointment_key in ({{ fct_visits_changed_keys(incremental_since()) }})
{% endif %}
