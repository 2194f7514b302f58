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

    Computed on the business's array rather than with rank() windows: a window sorts
    all customers of all businesses (three times, one per measure), while sorting each
    business's few hundred values is cheap. In the values sorted worst first, a
    position k starting a run of equal values has k - 1 values strictly worse;
    arrayFill carries that rank over the rest of the run (the ties); sorting the
    ranks by each value's original position puts them back in the input's order.
    Lambdas take the arrays as arguments and never capture one: a captured array is
    copied once per element. -#}
{% macro tercile_score(measures, worst_first) -%}
    {%- if worst_first == 'desc' -%}
        {%- set sort = 'arrayReverseSort' -%}
    {%- elif worst_first == 'asc' -%}
        {%- set sort = 'arraySort' -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("tercile_score: worst_first is 'asc' or 'desc', not " ~ worst_first) }}
    {%- endif -%}
    {%- set sorted = sort ~ '(' ~ measures ~ ')' -%}
    {%- set positions = 'arrayEnumerate(' ~ measures ~ ')' -%}
    arraySort(
        (score, position) -> position,
        arrayMap(
            rank -> toUInt8(1 + intDiv(3 * (rank - 1), length({{ measures }}))),
            arrayFill(
                (rank, starts_run) -> starts_run,
                {{ positions }},
                arrayMap(
                    (value, previous, k) -> k = 1 or value != previous,
                    {{ sorted }},
                    arrayPushFront(arrayPopBack({{ sorted }}), {{ sorted }}[1]),
                    {{ positions }}
                )
            )
        ),
        {{ sort }}((position, value) -> value, {{ positions }}, {{ measures }})
    )
{%- endmacro %}
