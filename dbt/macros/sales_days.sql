{#-
  Which sales days an incremental fct_daily_sales run recomputes (see the
  model's header): runs one query for the changed days and returns
  {'changed': [...], 'recomputed': [...], 'inputs': [...]} as sorted
  datetime.date lists (empty while dbt only parses).
-#}
{% macro sales_days_to_recompute(orders, order_events) %}
  {%- set result = {'changed': [], 'recomputed': [], 'inputs': []} -%}
  {%- if not execute -%}
    {{ return(result) }}
  {%- endif -%}
  {%- set changed_days_sql -%}
    select distinct explode(sequence(o.order_date, greatest(o.order_date, to_date(o.last_event_at)))) as sales_date
    from {{ orders }} as o
    left semi join (
        select order_id
        from {{ order_events }}
        where {{ lookback_filter('event_date') }}
    ) as changed on changed.order_id = o.order_id
  {%- endset -%}
  {%- set changed = [] -%}
  {%- for value in run_query(changed_days_sql).columns[0].values() -%}
    {%- do changed.append(modules.datetime.date.fromisoformat((value | string)[:10])) -%}
  {%- endfor -%}
  {%- set one_day = modules.datetime.timedelta(days=1) -%}
  {%- set recomputed = [] -%}
  {%- for day in changed -%}
    {%- for after in range(7) -%}
      {%- do recomputed.append(day + one_day * after) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- set inputs = [] -%}
  {%- for day in recomputed | unique -%}
    {%- for before in range(7) -%}
      {%- do inputs.append(day - one_day * before) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- do result.update({
      'changed': changed | sort,
      'recomputed': recomputed | unique | sort,
      'inputs': inputs | unique | sort,
  }) -%}
  {{ return(result) }}
{% endmacro %}


{% macro date_list(days) -%}
  {#- `(date'2026-11-20', ...)` for an IN filter; `(null)` matches nothing when empty -#}
  {%- if days | length == 0 -%}
    (null)
  {%- else -%}
    ({%- for day in days -%}date'{{ day.isoformat() }}'{{ ', ' if not loop.last }}{%- endfor -%})
  {%- endif -%}
{%- endmacro %}
