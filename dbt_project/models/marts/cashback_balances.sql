-- Cashback balance per customer (the person: customer_id is the phone's hash, the same
-- at every business) and currency: exactly the sum of their ledger entries.
-- The ledger is never rewritten: a reversal that arrives after the cashback was spent
-- is applied as it comes, so the balance can go negative; `negative_balance` flags
-- that debt, which the customer's next accruals pay off before anything can be spent.
select
    customer_id,
    currency,
    any(phone_e164) as phone_e164,
    sum(amount) as balance,
    sumIf(amount, event_type = 'accrual') as accrued,
    -sumIf(amount, event_type = 'reversal') as reversed,
    -sumIf(amount, event_type = 'redemption') as redeemed,
    sum(amount) < 0 as negative_balance,
    count() as entries,
    max(occurred_at) as last_entry_at
from {{ ref('cashback_ledger') }}
group by customer_id, currency
