-- One row per provider delivery report (status event): which message reached which
-- status when. A view, computed when queried (staging reads the raw webhook table with
-- FINAL), so it holds every status webhook loaded so far — also one loaded seconds ago,
-- after the last dbt build. Delivery asks it whether a message whose send was
-- interrupted already reached the provider.
select
    provider,
    event_id,
    message_id,
    provider_message_id,
    status,
    recipient,
    error_code,
    occurred_at,
    received_at
from {{ ref('stg_messenger__events') }}
where event_type = 'status'
