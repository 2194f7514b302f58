{{
    config(
        materialized="table",
        engine="MergeTree",
        order_by="message_id",
        query_settings=bulk_insert_settings(),
    )
}}

-- One row per trigger message, with the time it reached each funnel stage.
-- Status events find their message by our message id (WhatsApp biz_opaque_callback_data,
-- SMS message_id, Telegram button data) or, failing that, by the provider's message id
-- (for Telegram `<chat id>:<message id>`, as a reply names the chat and the message).
-- An event whose "our id" names no send is looked up as a provider id: SMS gateways
-- report their own id in `message_id` (the demo's recorded SMS reports do), and without
-- this fallback every such delivery report was dropped (found by marts.data_loss).
-- Stages are cumulative: a message read is also delivered even when the "delivered"
-- event was lost or arrived out of order, so every stage is a subset of the previous.
with sends as (
    select * from {{ ref('stg_messenger__sends') }}
),

status_events as (
    select
        message_id,
        status,
        occurred_at,
        message_id is not null and message_id in (select message_id from sends) as by_our_id,
        if(
            by_our_id,
            null,
            coalesce(
                if(
                    provider = 'telegram',
                    recipient || ':' || provider_message_id,
                    provider_message_id
                ),
                message_id
            )
        ) as provider_key
    from {{ ref('stg_messenger__events') }}
    where event_type in ('status', 'inbound')
),

by_provider_id as (
    -- Only the provider ids that an event without our id names: looking up every send
    -- would build a table of all sends for a handful of events.
    select provider_message_id, any(message_id) as message_id
    from sends
    where provider_message_id in (
        select provider_key from status_events where not by_our_id
    )
    group by provider_message_id
),

events as (
    select message_id, status, occurred_at
    from status_events
    where by_our_id

    union all

    select p.message_id as message_id, e.status as status, e.occurred_at as occurred_at
    from status_events as e
    inner join by_provider_id as p on p.provider_message_id = e.provider_key
    where not e.by_our_id and p.message_id != ''
),

milestones as (
    select
        assumeNotNull(message_id) as message_id,
        minIfOrNull(occurred_at, status = 'sent') as sent_event_at,
        minIfOrNull(occurred_at, status = 'delivered') as delivered_event_at,
        minIfOrNull(occurred_at, status = 'read') as read_event_at,
        minIfOrNull(occurred_at, status in ('replied', 'clicked')) as replied_event_at,
        minIfOrNull(occurred_at, status = 'failed') as failed_event_at
    from events
    where message_id is not null
    group by message_id
),

opt_outs as (
    select phone_e164, min(first_opt_out_at) as first_opt_out_at
    from {{ ref('int_opt_outs') }}
    where opted_out
    group by phone_e164
),

staged as (
    select
        s.message_id as message_id,
        s.business_id as business_id,
        s.customer_id as customer_id,
        s.phone_e164 as phone_e164,
        s.trigger as trigger,
        s.campaign_id as campaign_id,
        s.channel as channel,
        s.holdout as holdout,
        s.planned_at as planned_at,
        s.offer_id as offer_id,
        s.provider_message_id as provider_message_id,
        m.replied_event_at as replied_at,
        coalesce(m.read_event_at, m.replied_event_at) as read_at,
        coalesce(m.delivered_event_at, m.read_event_at, m.replied_event_at) as delivered_at,
        m.failed_event_at as failed_at,
        if(
            not s.holdout and (s.provider_message_id is not null or m.message_id != ''),
            coalesce(m.sent_event_at, m.delivered_event_at, m.read_event_at, s.planned_at),
            null
        ) as sent_at,
        o.first_opt_out_at as recipient_opt_out_at
    from sends as s
    left join milestones as m on s.message_id = m.message_id
    left join opt_outs as o on s.phone_e164 = o.phone_e164
)

select
    * except (recipient_opt_out_at),
    -- An opt-out by the recipient within 7 days after the send is charged to it.
    if(
        sent_at is not null
        and recipient_opt_out_at >= sent_at
        and recipient_opt_out_at < sent_at + interval 7 day,
        recipient_opt_out_at,
        null
    ) as opted_out_at
from staged
