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

    select
        currency,
        rate,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_until
    from {{ ref('fx_rates') }}
    where reporting_currency = '{{ reporting_currency }}'

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

    select
        f.*,
        coalesce(fx.rate, raise_error(concat(
            'fx_rates has no rate from ', f.currency, ' to {{ reporting_currency }} valid on ',
            cast(f.sales_date as string)
        ))) as rate
    from order_facts as f
    left join fx_rates as fx
        on fx.currency = f.currency
        and f.sales_date >= fx.valid_from
        and (fx.valid_until is null or f.sales_date < fx.valid_until)

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
