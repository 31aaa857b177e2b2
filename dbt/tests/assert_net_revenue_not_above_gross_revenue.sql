-- A day's net revenue (net sales less refunds) never exceeds its gross revenue:
-- discounts only lower the subtotal and refunds only subtract.
select sales_date, country, gross_revenue, net_revenue
from {{ ref('fct_daily_sales') }}
where net_revenue > gross_revenue
