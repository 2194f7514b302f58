{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree(loaded_at)',
        order_by='(business_id, appointment_id, updated_at)',
        incremental_strategy='append',
        full_refresh=false,
        query_settings=bulk_insert_settings({'optimize_on_insert': 0}),
    )
}}
{#- The durable history of CRM appointments: each run appends the versions loaded since
    the last one (see macros/incremental_changes.sql for the watermark). The raw table is
    a ReplacingMergeTree that merges superseded versions away, so this table is the only
    place a reschedule's earlier time survives; full_refresh is off because a rebuild
    from raw would lose every version already merged there. A re-delivered version (same
    key and updated_at) collapses into one row (read with FINAL), so the insert does not
    collapse them itself (optimize_on_insert off: a pass over every row, 3.0 of 11.5
    CPU-s when a run appends 20M versions). -#}

select
    business_id,
    appointment_id,
    source_customer_id,
    status,
    scheduled_at,
    created_at,
    updated_at,
    is_deleted,
    loaded_at
from {{ ref('stg_crm__appointment_versions') }}
{% if is_incremental() %}
where loaded_at > {{ incremental_since() }}
{% endif %}
