{#-
  `a.c1 <=> b.c1 and a.c2 <=> b.c2 ...`: two rows hold the same values in
  `columns` (null equals null). Incremental models drop the rows that would
  not change the target, so a MERGE rewrites only the files of rows that
  changed, and re-running a window commits (almost) nothing.
-#}
{% macro rows_equal(left, right, columns) -%}
  {%- for column in columns -%}
    {{ left }}.{{ column }} <=> {{ right }}.{{ column }}{{ ' and ' if not loop.last }}
  {%- endfor -%}
{%- endmacro %}
