{#-
  Generic test: no two rows share the same values in all of `combination_of_columns`
  (a composite key). Fails with one row per duplicated key and its count.
  Usage (model level):
    data_tests:
      - unique_combination_of_columns:
          arguments:
            combination_of_columns: [order_id, line_number]
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
  {%- if combination_of_columns is string or combination_of_columns | length == 0 -%}
    {{ exceptions.raise_compiler_error("unique_combination_of_columns needs a list of columns") }}
  {%- endif -%}
  {%- set columns = combination_of_columns | join(', ') %}
select {{ columns }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns }}
having count(*) > 1
{% endtest %}
