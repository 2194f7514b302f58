-- Campaign results a marketer can read: message_funnel's per-day, per-channel rows pooled
-- per business, trigger and campaign, once over the whole campaign (grain 'campaign')
-- and once per calendar month of the send (grain 'month'). Each row compares recipients
-- with the holdout: revisit rates, their difference (the lift) with its 95% Newcombe
-- interval (pooled counts, not an average of daily intervals), the revisits and the
-- revisit revenue the messages added, and a one-word verdict.
{{ config(query_settings=bulk_insert_settings()) }}
{% set windows = [7, 30] %}
{% set counts = [
    'recipients', 'sent', 'delivered', 'read', 'replied', 'failed', 'opted_out',
    'holdout_size', 'revisited_7d', 'holdout_revisited_7d', 'revisited_30d',
    'holdout_revisited_30d', 'revisit_revenue_30d', 'holdout_revisit_revenue_30d',
] %}

with pooled as (
    {% for grain, period in [('campaign', 'min(send_date)'), ('month', 'toStartOfMonth(send_date)')] %}
    select
        business_id,
        trigger,
        campaign_id,
        '{{ grain }}' as grain,
        {{ period }} as period_start,
        {% if grain == 'campaign' %}max(send_date){% else %}toLastDayOfMonth(period_start){% endif %}
            as period_end,
        min(send_date) as first_send_date,
        max(send_date) as last_send_date,
        arraySort(groupUniqArray(channel)) as channels,
        {% for column in counts %}
        sum({{ column }}) as {{ column }},
        {% endfor %}
        toBool(min(window_30d_complete)) as window_30d_complete
    from {{ ref('message_funnel') }}
    group by business_id, trigger, campaign_id
        {%- if grain == 'month' %}, period_start{% endif %}
    {{ "union all" if not loop.last }}
    {% endfor %}
)

select
    business_id,
    trigger,
    campaign_id,
    toLowCardinality(grain) as grain,
    period_start,
    period_end,
    first_send_date,
    last_send_date,
    channels,
    {% for column in counts %}
    {{ column }},
    {% endfor %}
    window_30d_complete,
    if(sent > 0, delivered / sent, null) as delivery_rate,
    if(sent > 0, read / sent, null) as read_rate,
    if(sent > 0, replied / sent, null) as reply_rate,
    {% for days in windows %}
    if(recipients > 0, revisited_{{ days }}d / recipients, null) as revisit_rate_{{ days }}d,
    if(holdout_size > 0, holdout_revisited_{{ days }}d / holdout_size, null)
        as holdout_revisit_rate_{{ days }}d,
    revisit_rate_{{ days }}d - holdout_revisit_rate_{{ days }}d as lift_{{ days }}d,
    {{ newcombe_low('revisited_' ~ days ~ 'd', 'recipients', 'holdout_revisited_' ~ days ~ 'd', 'holdout_size') }}
        as lift_ci95_low_{{ days }}d,
    {{ newcombe_high('revisited_' ~ days ~ 'd', 'recipients', 'holdout_revisited_' ~ days ~ 'd', 'holdout_size') }}
        as lift_ci95_high_{{ days }}d,
    lift_{{ days }}d * recipients as incremental_revisits_{{ days }}d,
    {% endfor %}
    -- Revenue of the revisits per recipient minus per holdout member, times recipients.
    if(
        recipients > 0 and holdout_size > 0,
        toFloat64(revisit_revenue_30d) / recipients
            - toFloat64(holdout_revisit_revenue_30d) / holdout_size,
        null
    ) * recipients as incremental_revenue_30d,
    toLowCardinality(multiIf(
        holdout_size = 0 or recipients = 0, 'no holdout',
        not window_30d_complete, 'window open',
        lift_ci95_low_30d > 0, 'lift',
        lift_ci95_high_30d < 0, 'negative',
        'inconclusive'
    )) as verdict_30d
from pooled
