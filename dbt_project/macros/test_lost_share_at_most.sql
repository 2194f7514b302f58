{#- Generic test on the data-loss ledger: no source table loses more than the share in
    var `share_var` of its rows on the way to a mart (quarantined whole at load or
    dropped by a join; merged rows and dropped fields are no loss). Each failing row
    names the source table, the mart, the rows lost and received, and the share. -#}
{% test lost_share_at_most(model, share_var) %}
select
    source_table,
    mart,
    sum(rows) as lost_rows,
    any(source_rows) as received_rows,
    lost_rows / received_rows as lost_share
from {{ model }}
where outcome = 'lost'
group by source_table, mart
having lost_share > {{ var(share_var) }}
{% endtest %}
