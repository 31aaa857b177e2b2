{#-
  dbt-spark 1.11 accepts only its built-in incremental strategies (append,
  merge, insert_overwrite, microbatch): its materialization validates the name
  and builds the SQL in two macros that do not look for dbt's
  `get_incremental_<name>_sql` convention, failing with
    "Invalid incremental strategy provided: <name>
     Expected one of: 'append', 'merge', 'insert_overwrite', 'microbatch'".
  These overrides (root-project macros win over the adapter's) keep the
  adapter's behaviour for its built-ins and resolve any other name through
  adapter.get_incremental_strategy_macro, as dbt-core's own materialization
  does, passing the usual arg_dict. Remove them once dbt-spark supports custom
  strategies itself.
-#}

{% macro _spark_builtin_incremental_strategies() -%}
  {{ return(['append', 'merge', 'insert_overwrite', 'microbatch']) }}
{%- endmacro %}


{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
  {%- if raw_strategy in _spark_builtin_incremental_strategies() -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
  {%- endif -%}
  {%- if file_format not in ['delta', 'iceberg', 'hudi'] -%}
    {{ exceptions.raise_compiler_error(
        "Incremental strategy " ~ raw_strategy ~ " needs a table format with MERGE (delta, iceberg, hudi); "
        ~ "file_format is " ~ file_format) }}
  {%- endif -%}
  {#- raises a clear error when no get_incremental_<name>_sql macro exists -#}
  {%- do adapter.get_incremental_strategy_macro(context, raw_strategy) -%}
  {{ return(raw_strategy) }}
{% endmacro %}


{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
  {%- if strategy in _spark_builtin_incremental_strategies() -%}
    {{ dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) }}
  {%- else -%}
    {%- set strategy_sql = adapter.get_incremental_strategy_macro(context, strategy) -%}
    {{ strategy_sql({
        'target_relation': target,
        'temp_relation': source,
        'unique_key': unique_key,
        'dest_columns': none,
        'incremental_predicates': incremental_predicates,
    }) }}
  {%- endif -%}
{% endmacro %}
