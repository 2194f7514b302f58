-- Opt-out state per recipient and provider: the latest opt-out/opt-in event wins.
-- A recipient is an E.164 phone (WhatsApp, SMS) or a Telegram chat id.
select
    recipient,
    provider,
    argMax(status, occurred_at) = 'opt_out' as opted_out,
    minIf(occurred_at, status = 'opt_out') as first_opt_out_at,
    max(occurred_at) as last_change_at
from {{ ref('stg_messenger__events') }}
where status in ('opt_out', 'opt_in') and recipient is not null
group by recipient, provider
