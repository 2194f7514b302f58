-- Per business and month: its partner collaborations as publisher and as distributor,
-- customers sent and received, new customers acquired, rewards earned (as distributor)
-- and paid (as publisher), cashback accrued and spent by its customers at the loyalty
-- partners in the business's currency (customers of several businesses count for each),
-- each with its change in % against the previous month (null when the previous month
-- was zero). Money is in the business's currency: rewards of offers priced in another
-- currency are left out here (partner_offer_conversion has them in their own).
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

currencies as (
    select business_id, currency from {{ ref('stg_crm__businesses') }}
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

    select e.publisher_business_id, toStartOfMonth(e.redeemed_at),
        0, 0, count(), countIf(e.new_client), toDecimal128(0, 2),
        sumIf(e.reward, e.currency = c.currency),
        toDecimal128(0, 2), toDecimal128(0, 2)
    from exposures as e
    left join currencies as c on e.publisher_business_id = c.business_id
    where e.redeemed_at is not null
    group by e.publisher_business_id, toStartOfMonth(e.redeemed_at)

    union all

    select e.distributor_business_id, toStartOfMonth(e.redeemed_at),
        0, 0, 0, 0, sumIf(e.reward, e.currency = c.currency),
        toDecimal128(0, 2), toDecimal128(0, 2), toDecimal128(0, 2)
    from exposures as e
    left join currencies as c on e.distributor_business_id = c.business_id
    where e.redeemed_at is not null
    group by e.distributor_business_id, toStartOfMonth(e.redeemed_at)

    union all

    select c.business_id, toStartOfMonth(l.occurred_at),
        0, 0, 0, 0, toDecimal128(0, 2), toDecimal128(0, 2),
        sumIf(l.amount, l.event_type = 'accrual'),
        -sumIf(l.amount, l.event_type = 'redemption')
    from {{ ref('cashback_ledger') }} as l
    inner join (
        select distinct c.business_id as business_id, c.customer_id as customer_id, b.currency
        from {{ ref('stg_crm__customers') }} as c
        inner join {{ ref('stg_crm__businesses') }} as b on c.business_id = b.business_id
    ) as c on l.customer_id = c.customer_id and l.currency = c.currency
    group by c.business_id, toStartOfMonth(l.occurred_at)
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
