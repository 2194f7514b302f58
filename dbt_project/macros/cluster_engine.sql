{#-
  Table engines on the `cluster` target. Models name single-node engines (MergeTree,
  ReplacingMergeTree(_version), ...); on a cluster each becomes its Replicated* twin, with
  one Keeper path per table shared by every node: marts and intermediate tables are small
  (aggregates, one row per customer), so every node holds all of them and any node answers
  a query alone. The big raw tables are sharded instead (warehouse.schema.cluster_raw_ddl).
  On other targets the engine is exactly the configured one (dbt-clickhouse's default).
-#}
{% macro revisit_engine(engine) -%}
  {%- set engine = (engine or 'MergeTree()') | trim -%}
  {%- if target.name != 'cluster' or engine.startswith('Replicated') or 'MergeTree' not in engine -%}
    {{ engine }}
  {%- else -%}
    {%- set name = engine.split('(')[0] | trim -%}
    {%- set args = engine[name | length:] | trim -%}
    {%- set args = args[1:-1] | trim if args.startswith('(') else '' -%}
    Replicated{{ name }}('/clickhouse/tables/{database}/{table}/{uuid}', '{replica}'{{ ', ' ~ args if args else '' }})
  {%- endif -%}
{%- endmacro %}

{# dbt-clickhouse's engine clause (materializations/table.sql), through revisit_engine. #}
{% macro engine_clause() %}
  engine = {{ revisit_engine(config.get('engine', default='MergeTree()')) }}
{%- endmacro -%}

{#-
  `dbt run-operation cluster_ddl_preview --target cluster`: for every table-like model,
  the head of the CREATE TABLE the cluster target issues (ON CLUSTER clause and engine),
  logged one per line — what tests/warehouse/test_cluster_target.py checks.
-#}
{% macro cluster_ddl_preview() %}
  {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
    {%- if node.resource_type == 'model' and node.config.materialized in ('table', 'incremental') -%}
      {%- set relation = api.Relation.create(
            schema=node.schema, identifier=node.alias,
            can_on_cluster=adapter.should_on_cluster(node.config.materialized,
                                                     node.config.get('engine', '')) ) -%}
      {{ log('DDL ' ~ node.name ~ ' | create table ' ~ relation ~ ' ' ~ on_cluster_clause(relation) | trim
             ~ ' engine = ' ~ revisit_engine(node.config.get('engine')) | trim, info=True) }}
    {%- endif -%}
  {%- endfor -%}
  {#- The name dbt-clickhouse's materializations call resolves to the override above. -#}
  {{ log('ENGINE_CLAUSE ' ~ engine_clause() | trim, info=True) }}
{% endmacro %}
