{{ config(materialized="table", engine="MergeTree", order_by="(phone_e164, provider)") }}

-- Opt-out state per phone and provider: inbound STOP/СТОП and Telegram blocks opt out,
-- an unblock opts back in; the latest event wins. WhatsApp and SMS events name the
-- phone; a Telegram event names the chat, which our Telegram sends map to a phone
-- (their provider message id is `<chat id>:<message id>`).
with telegram_chats as (
    select
        splitByChar(':', provider_message_id)[1] as chat_id,
        any(phone_e164) as phone_e164
    from {{ ref('stg_messenger__sends') }}
    where channel = 'telegram' and provider_message_id like '%:%'
    group by chat_id
),

events as (
    select
        e.provider as provider,
        if(e.provider = 'telegram', nullIf(c.phone_e164, ''), e.recipient) as phone_e164,
        e.status as status,
        e.occurred_at as occurred_at
    from {{ ref('stg_messenger__events') }} as e
    left join telegram_chats as c on e.provider = 'telegram' and e.recipient = c.chat_id
    where e.status in ('opt_out', 'opt_in') and e.recipient is not null
)

select
    assumeNotNull(phone_e164) as phone_e164,
    provider,
    argMax(status, occurred_at) = 'opt_out' as opted_out,
    minIf(occurred_at, status = 'opt_out') as first_opt_out_at,
    max(occurred_at) as last_change_at
from events
where phone_e164 is not null
group by phone_e164, provider
