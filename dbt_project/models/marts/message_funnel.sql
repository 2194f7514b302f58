-- Per business, trigger, campaign, channel and send date: the delivery funnel of the
-- recipients and, side by side, the revisit rates of recipients and of the holdout
-- group (chosen at random, never contacted). Their difference is the message's effect:
-- the incremental revisit rate, with its 95% Newcombe hybrid-score interval (see the
-- newcombe macros; campaign_results pools these rows per campaign and month).
{{ config(query_settings=bulk_insert_settings()) }}
{% set windows = [7, 30] %}

with sends as (
    -- Did the customer complete a visit at the same business within N days of the send?
    -- An ASOF join finds each send's next visit (the customer's first visit after it) by
    -- one lookup in the customer's sorted visits; a revisit within N days is that visit
    -- falling within N days. The customer is keyed by one string (see join_key).
    select
        s.*,
        v.visited_at as next_visit_at,
        v.amount as next_visit_amount,
        {% for days in windows %}
        next_visit_at > s.planned_at and next_visit_at <= s.planned_at + interval {{ days }} day
            as revisit_{{ days }}d{{ "," if not loop.last }}
        {% endfor %}
    from {{ ref('int_message_sends') }} as s
    asof left join (
        select
            {{ join_key('business_id', 'customer_id') }} as visitor_key,
            visited_at,
            amount
        from {{ ref('fct_visits') }}
    ) as v
        on {{ join_key('s.business_id', 's.customer_id') }} = v.visitor_key
        and v.visited_at > s.planned_at
),

grouped as (
    select
        s.business_id as business_id,
        s.trigger as trigger,
        coalesce(s.campaign_id, '') as campaign_id,
        s.channel as channel,
        toDate(s.planned_at) as send_date,
        countIf(not s.holdout) as recipients,
        countIf(s.sent_at is not null) as sent,
        countIf(s.delivered_at is not null and s.sent_at is not null) as delivered,
        countIf(s.read_at is not null and s.sent_at is not null) as read,
        countIf(s.replied_at is not null and s.sent_at is not null) as replied,
        countIf(s.failed_at is not null and s.sent_at is not null) as failed,
        countIf(s.opted_out_at is not null) as opted_out,
        countIf(s.holdout) as holdout_size,
        {% for days in windows %}
        countIf(not s.holdout and s.revisit_{{ days }}d) as revisited_{{ days }}d,
        countIf(s.holdout and s.revisit_{{ days }}d) as holdout_revisited_{{ days }}d,
        {% endfor %}
        -- The revenue of the revisit (the first completed visit within 30 days), so that
        -- campaign_results can put a money figure on the incremental revisits.
        toDecimal128(sumIf(s.next_visit_amount, not s.holdout and s.revisit_30d), 2)
            as revisit_revenue_30d,
        toDecimal128(sumIf(s.next_visit_amount, s.holdout and s.revisit_30d), 2)
            as holdout_revisit_revenue_30d,
        max(s.planned_at) + interval 30 day <= {{ as_of_end() }} as window_30d_complete
    from sends as s
    group by business_id, trigger, campaign_id, channel, send_date
)

select
    *,
    {% for days in windows %}
    if(recipients > 0, revisited_{{ days }}d / recipients, null) as revisit_rate_{{ days }}d,
    if(holdout_size > 0, holdout_revisited_{{ days }}d / holdout_size, null)
        as holdout_revisit_rate_{{ days }}d,
    revisit_rate_{{ days }}d - holdout_revisit_rate_{{ days }}d
        as incremental_revisit_rate_{{ days }}d,
    {{ newcombe_low('revisited_' ~ days ~ 'd', 'recipients', 'holdout_revisited_' ~ days ~ 'd', 'holdout_size') }}
        as incremental_ci95_low_{{ days }}d,
    {{ newcombe_high('revisited_' ~ days ~ 'd', 'recipients', 'holdout_revisited_' ~ days ~ 'd', 'holdout_size') }}
        as incremental_ci95_high_{{ days }}d{{ "," if not loop.last }}
    {% endfor %}
from grouped
