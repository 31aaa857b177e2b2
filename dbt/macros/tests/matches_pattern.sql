{#-
  Generic test: every non-null value of the column matches the regular expression
  `pattern` (Spark's rlike, Java syntax; anchor it with ^...$). Fails with one row per
  value that does not. Gold uses it where a data contract declares a pattern, so the
  test accepts exactly what silver accepts.
  Usage (column level):
    data_tests:
      - matches_pattern:
          arguments:
            pattern: "^[A-Z]{2}$"
-#}
{% test matches_pattern(model, column_name, pattern) %}
select {{ column_name }} as value, count(*) as rows_with_value
from {{ model }}
where {{ column_name }} is not null
  and not {{ column_name }} rlike '{{ pattern | replace("\\", "\\\\") | replace("'", "\\'") }}'
group by {{ column_name }}
{% endtest %}
