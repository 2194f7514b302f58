-- One row per (quarantined source row, field). `source_row_key` names the source row,
-- so a row quarantined for two fields, or again by a later re-pull of the CRM API,
-- counts once; `row_kept` marks a field-level quarantine (the value was dropped and the
-- row loaded without it).
with parsed as (
    select
        source_kind,
        source_table,
        _source as source_name,
        row_ref,
        field,
        reason,
        endsWith(reason, 'value dropped, row kept') as row_kept,
        -- CRM records carry the CRM's field names (ingestion/crm/field_map.yaml): their
        -- own `id`, and `business_id` (a business's id is its `id`). Other sources'
        -- rows belong to no single business.
        startsWith(source_table, 'crm_') as from_crm,
        if(from_crm, trim(both '"' from JSONExtractRaw(raw_row, 'id')), '') as source_record_id,
        multiIf(
            source_table = 'crm_businesses', source_record_id,
            from_crm, trim(both '"' from JSONExtractRaw(raw_row, 'business_id')),
            ''
        ) as business_id,
        raw_row,
        _batch_id as batch_id,
        _loaded_at as loaded_at
    from {{ source('ingestion', 'quarantine') }} final
)

select
    source_kind,
    source_table,
    source_name,
    row_ref,
    -- A CRM row is its raw table's natural key (API page or file drop alike); any other
    -- row is its line or reference in the file, segment or page it came in.
    if(
        from_crm and source_record_id != '',
        source_table || '|' || business_id || '|' || source_record_id,
        source_table || '|' || source_kind || '|' || source_name || '|' || row_ref
    ) as source_row_key,
    business_id,
    source_record_id,
    field,
    reason,
    row_kept,
    raw_row,
    batch_id,
    loaded_at
from parsed
