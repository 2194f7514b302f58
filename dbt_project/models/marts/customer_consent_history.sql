-- Every known version of every customer's marketing consent, valid from its
-- `updated_at` until the next version's (null: still current). Point-in-time ML
-- features read the value valid at a cutoff instead of today's. A view over the
-- incremental history int_customer_consent_history.
select
    business_id,
    customer_id,
    source_customer_id,
    consent_marketing,
    updated_at as valid_from,
    leadInFrame(toNullable(updated_at)) over (
        partition by business_id, source_customer_id
        order by updated_at
        rows between unbounded preceding and unbounded following
    ) as valid_to,
    is_deleted
from {{ ref('int_customer_consent_history') }} final
