{#- Query settings for a model that writes millions of rows (`query_settings` in its
    config), plus the model's own `settings`.

    An INSERT ... SELECT squashes the rows into blocks of about 1M rows by default, and
    each block becomes a part; the background merges then rewrite a 14M-row table once
    more, inside the dbt process, while later models run. Blocks of up to 512 MiB (no
    row limit) leave a few parts that are not merged: fct_visits on 14M visits costs
    12.6 CPU-s written as 4 parts instead of 14.2 + 4.7 s of merges written as 14, at
    about 2 GiB more peak memory; the byte limit keeps memory bounded on any volume. -#}
{% macro bulk_insert_settings(settings={}) -%}
    {%- set bulk = {
        'min_insert_block_size_rows': 1000000000,
        'min_insert_block_size_bytes': 536870912,
    } -%}
    {%- do bulk.update(settings) -%}
    {%- do return(bulk) -%}
{%- endmacro %}
