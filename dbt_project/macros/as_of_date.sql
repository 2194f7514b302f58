{#- The date marts are computed "as of": the `as_of_date` var (YYYY-MM-DD) or today (UTC). -#}
{% macro as_of_date() -%}
    {%- if var('as_of_date', '') -%}
        toDate('{{ var("as_of_date") }}')
    {%- else -%}
        toDate(now('UTC'))
    {%- endif -%}
{%- endmacro %}

{#- End of the as-of day as a UTC timestamp: events strictly before it are "known". -#}
{% macro as_of_end() -%}
    toDateTime64({{ as_of_date() }} + 1, 3, 'UTC')
{%- endmacro %}
