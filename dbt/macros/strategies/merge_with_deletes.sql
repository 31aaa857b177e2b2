{#-
  Incremental strategy `merge_with_deletes`: one atomic Iceberg MERGE that
  updates, inserts *and deletes* target rows, so a model can replace a whole
  group of rows (an order's lines, a day's countries) in a single commit,
  without a delete-then-insert gap that readers could see.

  The model's incremental SQL emits:
    * the new rows, with the flag column false;
    * the target rows that must go, with the flag column true (it reads them
      from {{ this }}: the rows of the groups it replaces that are no longer
      produced).
  The flag column exists only in the incremental SQL: the first build (and a
  --full-refresh) emits the plain rows, and the flag is never written to the
  target (it is left out of the update and insert column lists).

  Config keys:
    unique_key            required, a column or a list of columns; the source
                          must hold each key once (Spark raises
                          MERGE_CARDINALITY_VIOLATION otherwise)
    delete_flag_column    boolean column of the incremental SQL, true = delete
                          the target row with that key (null counts as false);
                          default `_delete`
    merge_exclude_columns optional, target columns an update leaves untouched
    incremental_predicates optional, extra conditions on DBT_INTERNAL_DEST to
                          prune the target scan
  Keep on_schema_change at its default (ignore): the flag must never be added
  to the target table; the strategy refuses a target that has it.
-#}
{% macro get_incremental_merge_with_deletes_sql(arg_dict) %}
  {%- set target = arg_dict['target_relation'] -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set unique_key = arg_dict['unique_key'] -%}
  {%- set predicates = [] + (arg_dict['incremental_predicates'] or []) -%}
  {%- set flag = config.get('delete_flag_column') or '_delete' -%}

  {%- if not unique_key -%}
    {{ exceptions.raise_compiler_error("merge_with_deletes needs a unique_key (model " ~ model.name ~ ")") }}
  {%- endif -%}
  {%- set keys = [unique_key] if unique_key is string else unique_key -%}

  {%- set dest_columns = adapter.get_columns_in_relation(target) -%}
  {%- set dest_names = dest_columns | map(attribute='name') | map('lower') | list -%}
  {%- if flag | lower in dest_names -%}
    {{ exceptions.raise_compiler_error(
        "merge_with_deletes: target " ~ target ~ " has the delete flag column '" ~ flag
        ~ "'; it must exist only in the model's incremental SQL (on_schema_change must stay 'ignore')") }}
  {%- endif -%}
  {%- set key_names = keys | map('lower') | list -%}
  {%- set excluded = (config.get('merge_exclude_columns') or []) | map('lower') | list -%}
  {%- set update_columns = [] -%}
  {%- for column in dest_columns -%}
    {%- if column.name | lower not in key_names and column.name | lower not in excluded -%}
      {%- do update_columns.append(column.quoted) -%}
    {%- endif -%}
  {%- endfor -%}

  {%- for key in keys -%}
    {%- do predicates.append('DBT_INTERNAL_SOURCE.' ~ adapter.quote(key) ~ ' = DBT_INTERNAL_DEST.' ~ adapter.quote(key)) -%}
  {%- endfor %}

  merge into {{ target }} as DBT_INTERNAL_DEST
  using {{ source }} as DBT_INTERNAL_SOURCE
  on {{ predicates | join('\n    and ') }}
  when matched and coalesce(DBT_INTERNAL_SOURCE.{{ adapter.quote(flag) }}, false) then delete
  {%- if update_columns %}
  when matched then update set
    {%- for column in update_columns %}
    {{ column }} = DBT_INTERNAL_SOURCE.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
  {%- endif %}
  when not matched and not coalesce(DBT_INTERNAL_SOURCE.{{ adapter.quote(flag) }}, false) then insert (
    {{ dest_columns | map(attribute='quoted') | join(', ') }}
  ) values (
    {%- for column in dest_columns %}
    DBT_INTERNAL_SOURCE.{{ column.quoted }}{{ ',' if not loop.last }}
    {%- endfor %}
  )
{% endmacro %}
