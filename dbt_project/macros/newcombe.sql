{#- 95% intervals for proportions and their difference, as SQL expressions.

    Wilson score interval of x successes in n trials (Wilson 1927):
        (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n),  p = x/n.
    Unlike the normal approximation it never has zero width at p = 0 or p = 1 and stays
    inside [0, 1] for small n.

    Newcombe's hybrid score interval for p1 − p2 (Newcombe 1998, method 10), from the
    Wilson intervals (l1, u1) and (l2, u2) of the two proportions:
        low  = (p1 − p2) − sqrt((p1 − l1)² + (u2 − p2)²)
        high = (p1 − p2) + sqrt((u1 − p1)² + (p2 − l2)²)
    the same as statsmodels' confint_proportions_2indep(method='newcomb'), which
    tests/warehouse/test_campaign_results.py compares against.

    Every macro is NULL when a group is empty (n = 0): there is no rate to compare.
    z is the 97.5% standard normal quantile, to full double precision. -#}

{% macro _z95() -%}1.959963984540054{%- endmacro %}

{% macro wilson_bound(x, n, sign) -%}
    if(
        ({{ n }}) > 0,
        least(1.0, greatest(0.0,
            (
                ({{ x }}) / ({{ n }}) + pow({{ _z95() }}, 2) / (2 * ({{ n }}))
                {{ sign }} {{ _z95() }} * sqrt(
                    ({{ x }}) / ({{ n }}) * (1 - ({{ x }}) / ({{ n }})) / ({{ n }})
                    + pow({{ _z95() }}, 2) / (4 * pow({{ n }}, 2))
                )
            ) / (1 + pow({{ _z95() }}, 2) / ({{ n }}))
        )),
        null
    )
{%- endmacro %}

{% macro wilson_low(x, n) -%}{{ wilson_bound(x, n, '-') }}{%- endmacro %}

{% macro wilson_high(x, n) -%}{{ wilson_bound(x, n, '+') }}{%- endmacro %}

{#- Lower bound of the 95% interval of x1/n1 − x2/n2. -#}
{% macro newcombe_low(x1, n1, x2, n2) -%}
    if(
        ({{ n1 }}) > 0 and ({{ n2 }}) > 0,
        ({{ x1 }}) / ({{ n1 }}) - ({{ x2 }}) / ({{ n2 }}) - sqrt(
            pow(({{ x1 }}) / ({{ n1 }}) - {{ wilson_low(x1, n1) }}, 2)
            + pow({{ wilson_high(x2, n2) }} - ({{ x2 }}) / ({{ n2 }}), 2)
        ),
        null
    )
{%- endmacro %}

{#- Upper bound of the 95% interval of x1/n1 − x2/n2. -#}
{% macro newcombe_high(x1, n1, x2, n2) -%}
    if(
        ({{ n1 }}) > 0 and ({{ n2 }}) > 0,
        ({{ x1 }}) / ({{ n1 }}) - ({{ x2 }}) / ({{ n2 }}) + sqrt(
            pow({{ wilson_high(x1, n1) }} - ({{ x1 }}) / ({{ n1 }}), 2)
            + pow(({{ x2 }}) / ({{ n2 }}) - {{ wilson_low(x2, n2) }}, 2)
        ),
        null
    )
{%- endmacro %}
