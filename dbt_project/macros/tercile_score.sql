{#- RFM score 1..3 of `measure` within a business, 3 = best.

    score = 1 + floor(3 * worse / n), where `n` is the number of the business's
    customers and `worse` the number of them strictly worse on the measure (rank - 1
    under RANK(), ordered worst first). Customers tied on the measure share one
    score — the lowest their rank allows — so ties never split across terciles and
    the result does not depend on row order. `partition_by` is the group ranked within
    (rfm_scores adds the snapshot date). -#}
{% macro tercile_score(measure, worst_first, partition_by='business_id') -%}
    toUInt8(1 + intDiv(
        3 * (rank() over (partition by {{ partition_by }} order by {{ measure }} {{ worst_first }}) - 1),
        count() over (partition by {{ partition_by }})
    ))
{%- endmacro %}
