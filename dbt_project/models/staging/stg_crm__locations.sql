select business_id, location_id, name as location_name, city, address, timezone, updated_at
from {{ source('crm', 'crm_locations') }} final
