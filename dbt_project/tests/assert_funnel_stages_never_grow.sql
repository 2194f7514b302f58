-- Each funnel stage is a subset of the previous one.
select *
from {{ ref('message_funnel') }}
where not (
    recipients >= sent and sent >= delivered and delivered >= read and read >= replied
    and sent >= failed
    and recipients >= revisited_30d and revisited_30d >= revisited_7d
    and holdout_size >= holdout_revisited_30d
    and holdout_revisited_30d >= holdout_revisited_7d
)
