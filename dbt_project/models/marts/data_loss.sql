-- The data-loss ledger: every place a row the sources delivered does not reach the mart
-- it feeds, counted per (business_id, source_table, mart, stage, outcome, reason), with
-- up to five example keys. Outcomes:
--   lost           the row is missing from `mart` (quarantined whole at load, or dropped
--                  by a join in the models);
--   field_dropped  the row was kept with one field set to NULL (a field-level
--                  quarantine): not a loss, counted so it stays visible;
--   merged         the row was folded into another one (CRM records of one business
--                  sharing a phone become one customer): not a loss.
-- `source_rows` is what the source table received in all (its staged rows plus its rows
-- quarantined whole), so `share` summed over a source table's `lost` rows is its loss.
with quarantined as (
    select
        source_row_key,
        any(source_table) as source_table,
        any(business_id) as business_id,
        any(source_record_id) as source_record_id,
        any(row_ref) as row_ref,
        -- Whole when any of its fields cost the row; otherwise only values were dropped.
        countIf(not row_kept) > 0 as whole,
        arrayStringConcat(arraySort(groupUniqArrayIf(field, not row_kept)), ', ') as fields
    from {{ ref('stg_ingestion__quarantine') }}
    group by source_row_key
),

dropped_fields as (
    -- One row per (source row kept, field dropped); a row with two fields dropped counts
    -- under each. Rows quarantined whole are counted as lost, not here.
    select
        q.source_table as source_table,
        q.business_id as business_id,
        q.field as field,
        q.source_row_key as source_row_key,
        q.row_ref as row_ref
    from {{ ref('stg_ingestion__quarantine') }} as q
    where q.row_kept
        and q.source_row_key not in (select source_row_key from quarantined where whole)
),

customers as (
    select business_id, source_customer_id, customer_id
    from {{ ref('stg_crm__customers') }}
),

quarantined_customers as (
    select distinct business_id, source_record_id as source_customer_id
    from quarantined
    where whole and source_table = 'crm_customers'
),

appointments as (
    select business_id, appointment_id, source_customer_id, status, amount
    from {{ ref('stg_crm__appointments') }}
),

orphan_appointments as (
    -- Appointments whose customer is not a staged customer of the business: int_appointments
    -- (an inner join) and every mart above it never see them.
    select
        a.business_id as business_id,
        a.appointment_id as appointment_id,
        a.status as status,
        if(
            {{ join_key('a.business_id', 'a.source_customer_id') }} in (
                select {{ join_key('business_id', 'source_customer_id') }}
                from quarantined_customers
            ),
            'customer quarantined at load',
            'customer not in the CRM customers'
        ) as reason
    from appointments as a
    where {{ join_key('a.business_id', 'a.source_customer_id') }} not in (
        select {{ join_key('business_id', 'source_customer_id') }} from customers
    )
),

sends as (
    select message_id, provider_message_id, channel from {{ ref('stg_messenger__sends') }}
),

events as (
    select
        provider,
        event_id,
        event_type,
        status,
        message_id,
        recipient,
        if(provider = 'telegram', recipient || ':' || provider_message_id, provider_message_id)
            as provider_key
    from {{ ref('stg_messenger__events') }}
),

unmatched_events as (
    -- Delivery reports and replies int_message_sends cannot attach to a send: neither
    -- our message id nor the provider's message id (or, failing that, the event's
    -- "our id" read as a provider id) names one. The funnel misses them. Opt-outs and
    -- opt-ins are read by int_opt_outs instead, without a send.
    select provider, event_id, event_type, status
    from events
    where event_type in ('status', 'inbound')
        and status not in ('opt_out', 'opt_in')
        and (message_id is null or message_id not in (select message_id from sends))
        and (
            coalesce(provider_key, message_id) is null
            or coalesce(provider_key, message_id) not in (
                select provider_message_id from sends where provider_message_id is not null
            )
        )
),

unresolved_opt_outs as (
    -- Telegram opt-outs name a chat; int_opt_outs finds the phone through our Telegram
    -- sends to that chat. A chat we never sent to has no phone: the opt-out is lost.
    select provider, event_id, event_type, status
    from events
    where status in ('opt_out', 'opt_in')
        and (
            recipient is null
            or (
                provider = 'telegram'
                and recipient not in (
                    select splitByChar(':', provider_message_id)[1]
                    from sends
                    where channel = 'telegram' and provider_message_id like '%:%'
                )
            )
        )
),

partner_events as (
    select partner_id, event_id, event_type, customer_id, offer_id
    from {{ ref('stg_partners__events') }}
    where event_type in ('accrual', 'reversal', 'redemption')
),

losses as (
    select
        business_id,
        source_table,
        multiIf(
            source_table = 'crm_customers', 'dim_customers',
            source_table = 'crm_appointments', 'fct_appointments',
            source_table = 'crm_businesses', 'dim_customers',
            source_table = 'message_sends', 'fct_message_sends',
            source_table = 'messenger_events', 'fct_message_sends',
            source_table = 'partner_events', 'cashback_ledger',
            source_table = 'partner_offers', 'dim_partner_offers',
            ''
        ) as mart,
        'ingestion' as stage,
        'lost' as outcome,
        'quarantined at load: ' || fields as reason,
        source_row_key as example_key
    from quarantined
    where whole

    union all

    select
        business_id, source_table, '' as mart, 'ingestion', 'field_dropped',
        'field dropped: ' || field, row_ref
    from dropped_fields

    union all

    -- CRM records of one business that normalise to the same phone are one customer:
    -- every record after the first is merged (see marts.crm_phone_collisions).
    select
        business_id, 'crm_customers', 'dim_customers', 'dim_customers', 'merged',
        'same phone as another CRM record of the business',
        business_id || ':' || source_customer_id
    from (
        select
            business_id,
            source_customer_id,
            row_number() over (
                partition by business_id, customer_id order by source_customer_id
            ) as n
        from customers
    )
    where n > 1

    union all

    select
        business_id, 'crm_appointments', 'fct_appointments', 'int_appointments', 'lost',
        reason, business_id || ':' || appointment_id
    from orphan_appointments

    union all

    -- Completed appointments of a known customer without an amount (e.g. an unparseable
    -- price dropped at load) are no visit: fct_visits, RFM and ML never see them.
    select
        a.business_id, 'crm_appointments', 'fct_visits', 'fct_visits', 'lost',
        'completed appointment without an amount', a.business_id || ':' || a.appointment_id
    from appointments as a
    where a.status = 'completed' and a.amount is null
        and {{ join_key('a.business_id', 'a.source_customer_id') }} in (
            select {{ join_key('business_id', 'source_customer_id') }} from customers
        )

    union all

    select
        '', 'messenger_events', 'fct_message_sends', 'int_message_sends', 'lost',
        event_type || ' event naming no known send', provider || ':' || event_id
    from unmatched_events

    union all

    select
        '', 'messenger_events', 'dim_customers', 'int_opt_outs', 'lost',
        status || ' event of a recipient with no known phone', provider || ':' || event_id
    from unresolved_opt_outs

    union all

    -- Cashback of a phone no CRM knows stays in the ledger and balances, but no
    -- business's partner dashboard can count it.
    select
        '', 'partner_events', 'partner_dashboard', 'partner_dashboard', 'lost',
        'cashback of a customer unknown to every CRM', partner_id || ':' || event_id
    from partner_events
    where customer_id not in (select customer_id from customers)
),

source_rows as (
    -- What each source table received: its staged rows (latest version of each key) and
    -- its rows quarantined whole.
    select source_table, sum(n) as received
    from (
        select 'crm_businesses' as source_table, count() as n from {{ ref('stg_crm__businesses') }}
        union all select 'crm_locations', count() from {{ ref('stg_crm__locations') }}
        union all select 'crm_services', count() from {{ ref('stg_crm__services') }}
        union all select 'crm_customers', count() from customers
        union all select 'crm_appointments', count() from appointments
        union all select 'message_sends', count() from sends
        union all select 'messenger_events', count() from events
        union all select 'partner_offers', count() from {{ ref('stg_partners__offers') }}
        union all select 'partner_events', count() from {{ ref('stg_partners__events') }}
        union all
        select source_table, count() from quarantined where whole group by source_table
    )
    group by source_table
)

select
    l.business_id as business_id,
    l.source_table as source_table,
    l.mart as mart,
    l.stage as stage,
    l.outcome as outcome,
    l.reason as reason,
    toUInt64(count()) as rows,
    toUInt64(any(s.received)) as source_rows,
    if(any(s.received) > 0, count() / any(s.received), 0) as share,
    groupArraySorted(5)(l.example_key) as example_keys
from losses as l
left join source_rows as s on l.source_table = s.source_table
group by business_id, source_table, mart, stage, outcome, reason
