{#-
  Daily sales by country in the reporting currency (definitions: _marts.yml).

  Incremental runs recompute every (sales_date, country) the lookback window
  can have changed, from fct_orders and fct_order_lines (never from this
  table's own figures):
    * changed days: for each order with an event in the lookback window, every
      day from its order_date to the day of its last event. That holds its
      order day now, any order day it had before this run (a late first
      version moves ordered_at earlier, never past the last event) and its
      refund day;
    * recomputed days: the changed days and the 6 days after each (revenue_7d);
    * input days: the recomputed days and the 6 days before each, whose daily
      figures revenue_7d sums.
  The changed days are one small query before the model runs (a few dates per
  day of window); the model then filters on date literals, so Iceberg prunes
  fct_orders' and this table's partitions instead of re-evaluating a semi-join
  subquery for every input and twice more inside the MERGE.
  Rows of the recomputed days that no longer exist (every order of a country
  moved to another day) are deleted in the same MERGE (merge_with_deletes).
  That query reads the silver source itself: staging models are ephemeral
  (CTEs), which only a model's own SQL can use, not a query run before it.
-#}
-- depends_on: {{ source('silver', 'order_events') }}
{{
  config(
    materialized='incremental',
    incremental_strategy='merge_with_deletes',
    unique_key=['sales_date', 'country'],
    delete_flag_column='_delete',
    partition_by=['sales_date'],
  )
}}

{%- set reporting_currency = var('reporting_currency') | string %}
{%- if is_incremental() %}
  {%- set days = sales_days_to_recompute(ref('fct_orders'), source('silver', 'order_events')) %}
  {%- set recomputed_days = date_list(days.recomputed) %}
  {%- set input_days = date_list(days.inputs) %}
{%- endif %}
{%- set columns = [
    'sales_date', 'country', 'reporting_currency', 'orders', 'cancelled_orders', 'items',
    'gross_revenue', 'discounts', 'net_sales', 'refunds', 'net_revenue',
    'average_order_value', 'revenue_7d',
] %}

with

fx_rates as (

    {{ reporting_fx_rates() }}

),

-- every order that counts on an input day: placed on it, or refunded on it
scoped_orders as (

    select order_id, order_date, refund_date, country, currency, status, subtotal
    from {{ ref('fct_orders') }}
    {%- if is_incremental() %}
    where order_date in {{ input_days }} or refund_date in {{ input_days }}
    {%- endif %}

),

-- one fact per order and day it counts on: its sale (order_date) and its refund
-- (refund_date)
order_days as (

    select o.order_id, o.country, o.currency, o.status = 'cancelled' as is_cancelled, o.subtotal,
        f.fact, f.sales_date
    from scoped_orders as o
    lateral view stack(2, 'sale', o.order_date, 'refund', o.refund_date) f as fact, sales_date
    where f.sales_date is not null
    {%- if is_incremental() %}
        and f.sales_date in {{ input_days }}
    {%- endif %}

),

-- each fact with the rate of its day; a missing rate fails the run instead of
-- silently dropping amounts
order_facts as (

    {{ with_fx_rate('order_days') }}

),

sold_order_lines as (

    select
        l.order_id,
        sum(l.quantity) as items,
        sum(l.gross_amount) as gross_amount,
        sum(l.discount_amount) as discount_amount
    from {{ ref('fct_order_lines') }} as l
    left semi join order_facts as f
        on f.order_id = l.order_id
        and f.fact = 'sale'
        and not f.is_cancelled
    group by l.order_id

),

-- amounts converted exactly (no rounding yet), summed per day and country
daily as (

    select
        f.sales_date,
        f.country,
        count_if(f.fact = 'sale' and not f.is_cancelled) as orders,
        count_if(f.fact = 'sale' and f.is_cancelled) as cancelled_orders,
        coalesce(sum(if(f.fact = 'sale' and not f.is_cancelled, l.items, 0)), 0) as items,
        sum(if(f.fact = 'sale' and not f.is_cancelled,
            cast(coalesce(l.gross_amount, 0) as decimal(18, 2)) * f.rate, 0)) as gross_revenue,
        sum(if(f.fact = 'sale' and not f.is_cancelled,
            cast(coalesce(l.discount_amount, 0) as decimal(18, 6)) * f.rate, 0)) as discounts,
        sum(if(f.fact = 'sale' and not f.is_cancelled,
            cast(f.subtotal as decimal(18, 2)) * f.rate, 0)) as net_sales,
        sum(if(f.fact = 'refund',
            cast(f.subtotal as decimal(18, 2)) * f.rate, 0)) as refunds
    from order_facts as f
    left join sold_order_lines as l
        on l.order_id = f.order_id
        and f.fact = 'sale'
    group by f.sales_date, f.country

),

rounded as (

    select
        sales_date,
        country,
        cast(orders as bigint) as orders,
        cast(cancelled_orders as bigint) as cancelled_orders,
        cast(items as bigint) as items,
        {%- for money in ['gross_revenue', 'discounts', 'net_sales', 'refunds'] %}
        cast(round({{ money }}, 2) as decimal(18, 2)) as {{ money }}{{ ',' if not loop.last }}
        {%- endfor %}
    from daily

),

-- derived from the rounded figures, so the table's identities hold to the cent
figures as (

    select
        sales_date,
        country,
        '{{ reporting_currency }}' as reporting_currency,
        orders,
        cancelled_orders,
        items,
        gross_revenue,
        discounts,
        net_sales,
        refunds,
        cast(net_sales - refunds as decimal(18, 2)) as net_revenue,
        cast(if(orders > 0, round(net_sales / orders, 2), null) as decimal(18, 2)) as average_order_value,
        cast(sum(net_sales - refunds) over (
            partition by country
            order by unix_date(sales_date)
            range between 6 preceding and current row
        ) as decimal(18, 2)) as revenue_7d
    from rounded

)

{% if is_incremental() %}

, recomputed as (

    select *
    from figures
    where sales_date in {{ recomputed_days }}

),

gone as (

    -- rows of the recomputed days that the recomputation no longer produces
    select t.*
    from {{ this }} as t
    left anti join recomputed as f
        on f.sales_date = t.sales_date
        and f.country = t.country
    where t.sales_date in {{ recomputed_days }}

),

changed as (

    -- recomputed rows that differ from the table's (a re-run of a window merges nothing)
    select r.*
    from recomputed as r
    left anti join (select * from {{ this }} where sales_date in {{ recomputed_days }}) as t
        on {{ rows_equal('r', 't', columns) }}

)

select {{ columns | join(', ') }}, false as _delete from changed
union all
select {{ columns | join(', ') }}, true as _delete from gone

{% else %}

select {{ columns | join(', ') }} from figures

{% endif %}
