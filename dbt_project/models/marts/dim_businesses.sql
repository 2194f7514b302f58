-- One row per business: its name and where it operates. Exports name their folders
-- after it and pick the language of labels and headers from its country.
select
    business_id,
    business_name as name,
    business_kind as kind,
    country,
    city,
    timezone,
    currency
from {{ ref('stg_crm__businesses') }}
