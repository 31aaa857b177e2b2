{#-
  The partition window Dagster passes (environment variables
  LAKEHOUSE_DBT_START_DATE, LAKEHOUSE_DBT_END_DATE: [start, end); unset, the window
  is everything) widened by the late window: incremental models reprocess
  [start - late_window_days, end), so a late correction of any day in the late
  window reaches gold on the next run without a manual backfill. Bounds are
  rendered as date literals, so Iceberg prunes partitions on them.

  The window is not a var: dbt re-parses the whole project whenever its vars
  change, and every run has a window of its own; environment variables are read
  again when a model compiles.
-#}

{% macro _window_date(name) -%}
  {%- set defaults = {'start': '1970-01-01', 'end': '9999-12-31'} -%}
  {%- set variable = 'LAKEHOUSE_DBT_' ~ (name | upper) ~ '_DATE' -%}
  {%- set raw = env_var(variable, defaults[name]) | string -%}
  {%- set parsed = modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', raw) -%}
  {%- if not parsed -%}
    {{ exceptions.raise_compiler_error("environment variable " ~ variable ~ " must be an ISO date (YYYY-MM-DD), got '" ~ raw ~ "'") }}
  {%- endif -%}
  {{ return(modules.datetime.date.fromisoformat(raw)) }}
{%- endmacro %}


{% macro lookback_start() -%}
  {#- the window's start - late_window_days, as a datetime.date -#}
  {%- set days = var('late_window_days') | int -%}
  {%- if days < 0 -%}
    {{ exceptions.raise_compiler_error("var late_window_days must be >= 0, got " ~ var('late_window_days')) }}
  {%- endif -%}
  {{ return(_window_date('start') - modules.datetime.timedelta(days=days)) }}
{%- endmacro %}


{% macro window_end() -%}
  {#- the window's end (exclusive), as a datetime.date -#}
  {%- set start = _window_date('start') -%}
  {%- set end = _window_date('end') -%}
  {%- if end <= start -%}
    {{ exceptions.raise_compiler_error("the window's end LAKEHOUSE_DBT_END_DATE (" ~ end ~ ") must be after its start LAKEHOUSE_DBT_START_DATE (" ~ start ~ ")") }}
  {%- endif -%}
  {{ return(end) }}
{%- endmacro %}


{% macro lookback_filter(column) -%}
  {#- `<column> in [start - late_window_days, end)`; column is a date -#}
  ({{ column }} >= date'{{ lookback_start().isoformat() }}' and {{ column }} < date'{{ window_end().isoformat() }}')
{%- endmacro %}
