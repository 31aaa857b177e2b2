{#-
  The partition window Dagster passes (vars start_date, end_date: [start, end))
  widened by the late window: incremental models reprocess
  [start_date - late_window_days, end_date), so a late correction of any day in
  the late window reaches gold on the next run without a manual backfill.
  Bounds are rendered as date literals, so Iceberg prunes partitions on them.
-#}

{% macro _window_date(name) -%}
  {%- set raw = var(name) | string -%}
  {%- set parsed = modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', raw) -%}
  {%- if not parsed -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " must be an ISO date (YYYY-MM-DD), got '" ~ raw ~ "'") }}
  {%- endif -%}
  {{ return(modules.datetime.date.fromisoformat(raw)) }}
{%- endmacro %}


{% macro lookback_start() -%}
  {#- start_date - late_window_days, as a datetime.date -#}
  {%- set days = var('late_window_days') | int -%}
  {%- if days < 0 -%}
    {{ exceptions.raise_compiler_error("var late_window_days must be >= 0, got " ~ var('late_window_days')) }}
  {%- endif -%}
  {{ return(_window_date('start_date') - modules.datetime.timedelta(days=days)) }}
{%- endmacro %}


{% macro window_end() -%}
  {#- end_date (exclusive), as a datetime.date -#}
  {%- set start = _window_date('start_date') -%}
  {%- set end = _window_date('end_date') -%}
  {%- if end <= start -%}
    {{ exceptions.raise_compiler_error("var end_date (" ~ end ~ ") must be after start_date (" ~ start ~ ")") }}
  {%- endif -%}
  {{ return(end) }}
{%- endmacro %}


{% macro lookback_filter(column) -%}
  {#- `<column> in [start_date - late_window_days, end_date)`; column is a date -#}
  ({{ column }} >= date'{{ lookback_start().isoformat() }}' and {{ column }} < date'{{ window_end().isoformat() }}')
{%- endmacro %}
