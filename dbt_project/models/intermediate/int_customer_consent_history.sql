{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree(loaded_at)',
        order_by='(business_id, source_customer_id, updated_at)',
        incremental_strategy='append',
        full_refresh=false,
    )
}}
{#- The durable history of CRM customers' marketing consent: each run appends the
    versions loaded since the last one. Like int_appointment_versions, it keeps what the
    raw ReplacingMergeTree merges away, so full refresh is off. -#}

select
    business_id,
    source_customer_id,
    customer_id,
    consent_marketing,
    created_at,
    updated_at,
    is_deleted,
    loaded_at
from {{ ref('stg_crm__customer_versions') }}
{% if is_incremental() %}
where loaded_at > {{ incremental_since() }}
{% endif %}
