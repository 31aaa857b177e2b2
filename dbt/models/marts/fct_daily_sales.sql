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
  Rows of the recomputed days that no longer exist (every order of a country
  moved to another day) are deleted in the same MERGE (merge_with_deletes).
-#}
-- depends_on: {{ ref('stg_silver__order_events') }}
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
{%- set columns = [
    'sales_date', 'country', 'reporting_currency', 'orders', 'cancelled_orders', 'items',
    'gross_revenue', 'discounts', 'net_sales', 'refunds', 'net_revenue',
    'average_order_value', 'revenue_7d',
] %}

with

{% if is_incremental() %}

changed_orders as (

    select distinct order_id
    from {{ ref('stg_silver__order_events') }}
    where {{ lookback_filter('event_date') }}

),

changed_days as (

    select distinct
        explode(sequence(o.order_date, greatest(o.order_date, to_date(o.last_event_at)))) as sales_date
    from {{ ref('fct_orders') }} as o
    left semi join changed_orders as c on c.order_id = o.order_id

),

recomputed_days as (

    select distinct date_add(d.sales_date, n.days_after) as sales_date
    from changed_days as d
    cross join (select explode(sequence(0, 6)) as days_after) as n

),

input_days as (

    select distinct date_sub(d.sales_date, n.days_before) as sales_date
    from recomputed_days as d
    cross join (select explode(sequence(0, 6)) as days_before) as n

),

{% endif %}

fx_rates as (

    select
        currency,
        rate,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_until
    from {{ ref('fx_rates') }}
    where reporting_currency = '{{ reporting_currency }}'

),

placed_orders as (

    select o.order_id, o.order_date, o.country, o.currency, o.status, o.subtotal
    from {{ ref('fct_orders') }} as o
    {%- if is_incremental() %}
    left semi join input_days as d on d.sales_date = o.order_date
    {%- endif %}

),

refunded_orders as (

    select o.order_id, o.refund_date, o.country, o.currency, o.subtotal
    from {{ ref('fct_orders') }} as o
    {%- if is_incremental() %}
    left semi join input_days as d on d.sales_date = o.refund_date
    {%- endif %}
    where o.refund_date is not null

),

order_line_totals as (

    select
        l.order_id,
        sum(l.quantity) as items,
        sum(l.gross_amount) as gross_amount,
        sum(l.discount_amount) as discount_amount
    from {{ ref('fct_order_lines') }} as l
    left semi join placed_orders as o on o.order_id = l.order_id
    group by l.order_id

),

-- placed orders with the rate of their order day; a missing rate fails the run
-- instead of silently dropping amounts
placed_orders_rated as (

    select
        o.*,
        coalesce(fx.rate, raise_error(concat(
            'fx_rates has no rate from ', o.currency, ' to {{ reporting_currency }} valid on ',
            cast(o.order_date as string)
        ))) as rate
    from placed_orders as o
    left join fx_rates as fx
        on fx.currency = o.currency
        and o.order_date >= fx.valid_from
        and (fx.valid_until is null or o.order_date < fx.valid_until)

),

-- one row per placed order, amounts converted exactly (no rounding yet)
placed_orders_converted as (

    select
        o.order_date as sales_date,
        o.country,
        o.status = 'cancelled' as is_cancelled,
        coalesce(l.items, 0) as items,
        cast(coalesce(l.gross_amount, 0) as decimal(18, 2)) * o.rate as gross_revenue,
        cast(coalesce(l.discount_amount, 0) as decimal(18, 6)) * o.rate as discounts,
        cast(o.subtotal as decimal(18, 2)) * o.rate as net_sales
    from placed_orders_rated as o
    left join order_line_totals as l on l.order_id = o.order_id

),

sales as (

    select
        sales_date,
        country,
        count_if(not is_cancelled) as orders,
        count_if(is_cancelled) as cancelled_orders,
        coalesce(sum(if(is_cancelled, 0, items)), 0) as items,
        sum(if(is_cancelled, null, gross_revenue)) as gross_revenue,
        sum(if(is_cancelled, null, discounts)) as discounts,
        sum(if(is_cancelled, null, net_sales)) as net_sales
    from placed_orders_converted
    group by sales_date, country

),

-- refunds count on the refund's day, at that day's rate
refunds as (

    select
        r.refund_date as sales_date,
        r.country,
        sum(cast(r.subtotal as decimal(18, 2)) * coalesce(fx.rate, raise_error(concat(
            'fx_rates has no rate from ', r.currency, ' to {{ reporting_currency }} valid on ',
            cast(r.refund_date as string)
        )))) as refunds
    from refunded_orders as r
    left join fx_rates as fx
        on fx.currency = r.currency
        and r.refund_date >= fx.valid_from
        and (fx.valid_until is null or r.refund_date < fx.valid_until)
    group by r.refund_date, r.country

),

daily as (

    select
        coalesce(s.sales_date, r.sales_date) as sales_date,
        coalesce(s.country, r.country) as country,
        coalesce(s.orders, 0) as orders,
        coalesce(s.cancelled_orders, 0) as cancelled_orders,
        coalesce(s.items, 0) as items,
        cast(round(coalesce(s.gross_revenue, 0), 2) as decimal(18, 2)) as gross_revenue,
        cast(round(coalesce(s.discounts, 0), 2) as decimal(18, 2)) as discounts,
        cast(round(coalesce(s.net_sales, 0), 2) as decimal(18, 2)) as net_sales,
        cast(round(coalesce(r.refunds, 0), 2) as decimal(18, 2)) as refunds
    from sales as s
    full outer join refunds as r
        on r.sales_date = s.sales_date
        and r.country = s.country

),

figures as (

    select
        sales_date,
        country,
        '{{ reporting_currency }}' as reporting_currency,
        cast(orders as bigint) as orders,
        cast(cancelled_orders as bigint) as cancelled_orders,
        cast(items as bigint) as items,
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
    from daily

)

{% if is_incremental() %}

, recomputed as (

    select f.*
    from figures as f
    left semi join recomputed_days as d on d.sales_date = f.sales_date

),

gone as (

    -- rows of the recomputed days that the recomputation no longer produces
    select t.*
    from {{ this }} as t
    left semi join recomputed_days as d on d.sales_date = t.sales_date
    left anti join recomputed as f
        on f.sales_date = t.sales_date
        and f.country = t.country

)

select {{ columns | join(', ') }}, false as _delete from recomputed
union all
select {{ columns | join(', ') }}, true as _delete from gone

{% else %}

select {{ columns | join(', ') }} from figures

{% endif %}
