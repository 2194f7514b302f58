-- Per business, the mean of each measure orders strictly with its score: mean recency
-- of R3 < R2 < R1, mean frequency of F3 > F2 > F1, mean spend of M3 > M2 > M1.
-- (Scores present in the business only; ties share a score, so groups never overlap.)
{% for measure, score, direction in [
    ('recency_days', 'r_score', '<'),
    ('frequency', 'f_score', '>'),
    ('toFloat64(monetary)', 'm_score', '>'),
] %}
select business_id, '{{ score }}' as score, arraySort(x -> -x.1, groupArray((s, m))) as means
from (
    select business_id, {{ score }} as s, avg({{ measure }}) as m
    from {{ ref('customer_rfm') }}
    group by business_id, s
)
group by business_id
having arrayExists(
    i -> not (means[i].2 {{ direction }} means[i + 1].2),
    arrayEnumerate(arrayPopBack(means))
)
{% if not loop.last %}union all{% endif %}
{% endfor %}
