-- Per business and month: its partner collaborations as publisher and as distributor,
-- customers sent and received, new customers acquired, rewards earned (as distributor)
-- and owed (as publisher), cashback accrued and spent at it (partner feeds whose
-- partner_id is the business), each with its change in % against the previous month
-- (null when the previous month was zero).
{% set metrics = [
    'active_collaborations', 'customers_sent', 'customers_received', 'new_customers',
    'rewards_earned', 'rewards_paid', 'cashback_accrued', 'cashback_spent',
] %}

with offers as (
    select * from {{ ref('stg_partners__offers') }}
),

exposures as (
    select * from {{ ref('int_offer_exposures') }}
),

activity as (
    select business_id, month,
        0 as active_collaborations, uniqExact(customer_id) as customers_sent,
        0 as customers_received, 0 as new_customers,
        toDecimal128(0, 2) as rewards_earned, toDecimal128(0, 2) as rewards_paid,
        toDecimal128(0, 2) as cashback_accrued, toDecimal128(0, 2) as cashback_spent
    from (
        select business_id, toStartOfMonth(sent_at) as month, customer_id
        from {{ ref('int_message_sends') }}
        where trigger = 'partner_offer' and sent_at is not null
    )
    group by business_id, month

    union all

    select publisher_business_id, toStartOfMonth(redeemed_at),
        0, 0, count(), countIf(new_client), toDecimal128(0, 2), sum(reward),
        toDecimal128(0, 2), toDecimal128(0, 2)
    from exposures
    where redeemed_at is not null
    group by publisher_business_id, toStartOfMonth(redeemed_at)

    union all

    select distributor_business_id, toStartOfMonth(redeemed_at),
        0, 0, 0, 0, sum(reward), toDecimal128(0, 2), toDecimal128(0, 2), toDecimal128(0, 2)
    from exposures
    where redeemed_at is not null
    group by distributor_business_id, toStartOfMonth(redeemed_at)

    union all

    select partner_id, toStartOfMonth(occurred_at),
        0, 0, 0, 0, toDecimal128(0, 2), toDecimal128(0, 2),
        sumIf(amount, event_type = 'accrual'),
        -sumIf(amount, event_type = 'redemption')
    from {{ ref('cashback_ledger') }}
    group by partner_id, toStartOfMonth(occurred_at)
),

months as (
    -- Every month from the business's first partner activity to the as-of month.
    select
        business_id,
        addMonths(first_month, arrayJoin(range(toUInt32(
            dateDiff('month', first_month, toStartOfMonth({{ as_of_date() }})) + 1
        )))) as month
    from (select business_id, min(month) as first_month from activity group by business_id)
    where first_month <= toStartOfMonth({{ as_of_date() }})
),

collaborations as (
    select m.business_id as business_id, m.month as month, uniqExact(o.offer_id) as active
    from months as m
    inner join (
        select offer_id, publisher_business_id as business_id, valid_from, valid_to from offers
        union all
        select offer_id, arrayJoin(distributor_business_ids), valid_from, valid_to from offers
    ) as o on m.business_id = o.business_id
    where o.valid_from <= toLastDayOfMonth(m.month) and o.valid_to >= m.month
    group by business_id, month
),

monthly as (
    select
        m.business_id as business_id,
        m.month as month,
        any(c.active) as active_collaborations,
        {% for metric in metrics[1:] %}
        sum(a.{{ metric }}) as {{ metric }}{{ "," if not loop.last }}
        {% endfor %}
    from months as m
    left join activity as a on m.business_id = a.business_id and m.month = a.month
    left join collaborations as c on m.business_id = c.business_id and m.month = c.month
    group by business_id, month
)

select
    business_id,
    month,
    {% for metric in metrics %}
    {{ metric }},
    if(
        prev_{{ metric }} = 0,
        null,
        round(100 * (toFloat64({{ metric }}) - toFloat64(prev_{{ metric }}))
            / toFloat64(prev_{{ metric }}), 1)
    ) as {{ metric }}_change_pct{{ "," if not loop.last }}
    {% endfor %}
from (
    select
        *,
        {% for metric in metrics %}
        lagInFrame({{ metric }}) over (partition by business_id order by month)
            as prev_{{ metric }}{{ "," if not loop.last }}
        {% endfor %}
    from monthly
)
