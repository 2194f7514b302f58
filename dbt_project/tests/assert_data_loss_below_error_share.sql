{{ config(severity='error', meta={'dagster': {'ref': {'name': 'data_loss'}}}) }}
-- No source table loses more than var('data_loss_error_share') of its rows on the way to
-- a mart (quarantined whole at load or dropped by a join; merged rows and dropped fields
-- are no loss). Each failing row names the source table, the mart, the rows lost and
-- received, and the share.
select
    source_table,
    mart,
    sum(rows) as lost_rows,
    any(source_rows) as received_rows,
    lost_rows / received_rows as lost_share
from {{ ref('data_loss') }}
where outcome = 'lost'
group by source_table, mart
having lost_share > {{ var('data_loss_error_share') }}
