{#-
  Sales per customer in the reporting currency (definitions: _marts__models.yml): the
  customer ranking of the dashboard, with the amounts of fct_daily_sales counted per
  customer instead of per day and country. An order's sale counts at the rate of its
  order_date unless it is cancelled, its refund at the rate of its refund_date.

  Rebuilt whole from fct_orders on every run, in one INSERT OVERWRITE commit
  (incremental, insert_overwrite, unpartitioned), as dim_customers is: a late event
  can change any customer's figures.
-#}
{{ config(materialized='incremental', incremental_strategy='insert_overwrite') }}
{%- set reporting_currency = var('reporting_currency') | string %}

with

fx_rates as (

    {{ reporting_fx_rates() }}

),

-- one fact per order and day it counts on: its sale (unless cancelled) and its refund
order_facts as (

    select o.customer_id, o.currency, o.subtotal, f.fact, f.sales_date
    from {{ ref('fct_orders') }} as o
    lateral view stack(
        2, 'sale', if(o.status = 'cancelled', null, o.order_date), 'refund', o.refund_date
    ) f as fact, sales_date
    where f.sales_date is not null

),

-- a missing rate fails the run instead of silently dropping amounts
converted as (

    {{ with_fx_rate('order_facts') }}

),

totals as (

    select
        customer_id,
        cast(count_if(fact = 'sale') as bigint) as orders,
        cast(round(sum(if(fact = 'sale', cast(subtotal as decimal(18, 2)) * rate, 0)), 2)
            as decimal(18, 2)) as net_sales,
        cast(round(sum(if(fact = 'refund', cast(subtotal as decimal(18, 2)) * rate, 0)), 2)
            as decimal(18, 2)) as refunds,
        min(if(fact = 'sale', sales_date, null)) as first_order_date,
        max(if(fact = 'sale', sales_date, null)) as last_order_date
    from converted
    group by customer_id

)

select
    customer_id,
    '{{ reporting_currency }}' as reporting_currency,
    orders,
    net_sales,
    refunds,
    cast(net_sales - refunds as decimal(18, 2)) as net_revenue,
    first_order_date,
    last_order_date
from totals
