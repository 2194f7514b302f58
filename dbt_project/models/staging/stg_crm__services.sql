select business_id, service_id, name as service_name, category, price, currency, duration_min, updated_at
from {{ source('crm', 'crm_services') }} final
