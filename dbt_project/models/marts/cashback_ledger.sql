-- One row per cashback money event from partner feeds: accruals (+), reversals (−) and
-- redemptions (−), signed, in the event's currency. Keyed by the source event id, so a
-- re-delivered event never counts twice. Incremental on the load time of raw events (see
-- macros/incremental_changes.sql): each run deletes the entries of every event (re)loaded
-- since the last one and inserts what they are now, so a re-delivery that corrects an
-- event's type or amount replaces its entry (or removes it, when no longer money).
{{
    config(
        materialized='incremental',
        engine='ReplacingMergeTree(loaded_at)',
        order_by='(entry_id)',
        incremental_strategy='append',
        pre_hook="{{ delete_changed_keys('entry_id', cashback_ledger_changed_keys(incremental_since())) }}",
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
    and loaded_at > {{ incremental_since() }}
{% endif %}
