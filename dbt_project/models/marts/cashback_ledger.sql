-- One row per cashback money event from partner feeds: accruals (+), reversals (−) and
-- redemptions (−), signed, in the event's currency. Keyed by the source event id, so a
-- re-delivered event never counts twice; incremental on the load time of raw events.
{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree(loaded_at)',
        order_by='(entry_id)',
        unique_key='entry_id',
        incremental_strategy='delete+insert',
    )
}}

select
    partner_event_key as entry_id,
    partner_id,
    event_id as source_event_id,
    event_type,
    customer_id,
    phone_e164,
    if(event_type = 'accrual', abs(amount), -abs(amount)) as amount,
    currency,
    occurred_at,
    offer_id,
    loaded_at
from {{ ref('stg_partners__events') }}
where event_type in ('accrual', 'reversal', 'redemption')
{% if is_incremental() %}
    and loaded_at > (select max(loaded_at) from {{ this }})
{% endif %}
