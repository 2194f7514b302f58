{{ config(meta={'dagster': {'ref': {'name': 'cashback_balances'}}}) }}
-- cashback_balances is exactly the ledger summed per customer and currency.
with ledger as (
    select customer_id, currency, sum(amount) as total, count() as entries
    from {{ ref('cashback_ledger') }}
    group by customer_id, currency
)

select l.customer_id, l.currency, l.total, b.balance
from ledger as l
full outer join {{ ref('cashback_balances') }} as b
    on l.customer_id = b.customer_id and l.currency = b.currency
where l.total != b.balance or l.entries != b.entries
