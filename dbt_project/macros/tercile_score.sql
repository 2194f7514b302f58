{#- RFM scores 1..3 of every customer of one business on one measure, 3 = best.

    `measures`: an Array expression, the measure of each of the business's customers;
    returns an Array(UInt8) of their scores in the same order. `worst_first`: 'asc' if
    the smallest value is the worst (frequency, monetary), 'desc' if the largest is
    (recency).

    score = 1 + floor(3 * worse / n), where `n` is the number of the business's
    customers and `worse` the number of them strictly worse on the measure (rank - 1
    under RANK(), ordered worst first). Customers tied on the measure share one
    score — the lowest their rank allows — so ties never split across terciles and
    the result does not depend on row order.

    Computed on the business's array rather than with rank() windows (a window sorts
    every customer of every business, once per measure). The score only grows with the
    value, so it is fixed by two thresholds: with values ordered worst first,
    worse >= k exactly when the value is strictly better than the k-th worst value.
    So score >= 2 iff 3 * worse >= n, i.e. worse >= ceil(n / 3): strictly better than
    the ceil(n/3)-th worst; score 3 iff strictly better than the ceil(2n/3)-th worst.
    One sort per business and measure, no ranks, and ties (equal values) always fall
    on the same side of a threshold. The thresholds are passed to the lambda as arrays
    rather than captured: a captured array would be copied once per element. -#}
{% macro tercile_score(measures, worst_first) -%}
    {%- if worst_first == 'asc' -%}
        {%- set worst_first_sorted, better = 'arraySort(' ~ measures ~ ')', '>' -%}
    {%- elif worst_first == 'desc' -%}
        {%- set worst_first_sorted, better = 'arrayReverseSort(' ~ measures ~ ')', '<' -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("tercile_score: worst_first is 'asc' or 'desc', not " ~ worst_first) }}
    {%- endif -%}
    {%- set n = 'length(' ~ measures ~ ')' -%}
    arrayMap(
        (value, second, third) -> toUInt8(1 + (value {{ better }} second) + (value {{ better }} third)),
        {{ measures }},
        arrayWithConstant({{ n }}, {{ worst_first_sorted }}[intDiv({{ n }} + 2, 3)]),
        arrayWithConstant({{ n }}, {{ worst_first_sorted }}[intDiv(2 * {{ n }} + 2, 3)])
    )
{%- endmacro %}
