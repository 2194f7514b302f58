{#- Incremental marts that follow their sources' *load* time.

    A mart incremental on a business timestamp (`updated_at > max(updated_at)`) skips for
    good a late record whose `updated_at` is older than what it loaded, and an insert-only
    run never removes a row whose source row stopped qualifying (a visit the CRM
    cancelled or deleted). These marts instead keep the raw `_loaded_at` of their source
    rows (`loaded_at`), which every (re)delivery refreshes, and on each run:

    1. take the watermark W = max(loaded_at) of the mart as it stands (`incremental_since`);
    2. pre-hook: delete the mart's rows of every key whose source rows were loaded after W
       (`delete_changed_keys`), whatever they became;
    3. insert the rows those keys qualify for now (strategy `append`).

    Keys loaded after W are a superset of what earlier runs have not seen, so the result
    equals a full refresh (tests/integration/test_incremental_differential.py checks it).
    The watermark is read once per run, at compile time, so the pre-hook and the model see
    the same W although the pre-hook's DELETE may lower the mart's max(loaded_at).

    var `incremental_lookback_seconds` (default 300): W moves back by this much, so rows a
    load committed while the previous run was reading (their `_loaded_at` older than what
    that run saw) are picked up; re-processing a key is idempotent. -#}

{% macro incremental_since(column='loaded_at') -%}
    {%- if execute and is_incremental() -%}
        {%- set result = run_query(
            "select toInt64(ifNull(toUnixTimestamp64Milli(max(" ~ column ~ ")), 0)) from " ~ this
        ) -%}
        {%- set watermark_ms = result.columns[0].values()[0] | int -%}
        fromUnixTimestamp64Milli(toInt64({{ watermark_ms }}), 'UTC')
            - toIntervalSecond({{ var('incremental_lookback_seconds', 300) | int }})
    {%- else -%}
        toDateTime64(0, 3, 'UTC')
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of such a mart: delete the rows of the keys `changed_keys_sql` selects (one
    column). Renders to nothing on a first build or a full refresh. -#}
{% macro delete_changed_keys(key_column, changed_keys_sql) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ key_column }} in ({{ changed_keys_sql }})
    {%- endif -%}
{%- endmacro %}

{#- Keys of `fct_visits` whose inputs were loaded after `since`: appointments (re)loaded
    in any version, including the CRM's deletions, which the current-state staging views
    no longer show (so this reads the change feed `stg_crm__record_loads`), and the live
    appointments of customers (re)loaded — a customer deleted, restored or given another
    phone changes their visits. -#}
{% macro fct_visits_changed_keys(since) -%}
    select business_id || ':' || record_id
    from {{ ref('stg_crm__record_loads') }}
    where entity = 'appointment' and loaded_at > {{ since }}
    union distinct
    select a.business_id || ':' || a.appointment_id
    from {{ ref('stg_crm__appointments') }} as a
    where {{ join_key('a.business_id', 'a.source_customer_id') }} in (
        select {{ join_key('business_id', 'record_id') }}
        from {{ ref('stg_crm__record_loads') }}
        where entity = 'customer' and loaded_at > {{ since }}
    )
{%- endmacro %}

{#- Keys of `cashback_ledger` whose partner event was (re)loaded after `since`: the latest
    version of an event carries the load time of its latest delivery. -#}
{% macro cashback_ledger_changed_keys(since) -%}
    select partner_event_key
    from {{ ref('stg_partners__events') }}
    where loaded_at > {{ since }}
{%- endmacro %}
