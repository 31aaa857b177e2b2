-- The lines of an order's current version add up to its subtotal within a cent
-- (the subtotal is their exact sum rounded half up to cents). Orders whose lines
-- gold holds at another version (a window that has not reached the newest
-- version yet) are not compared.
with lines as (

    select order_id, max(version) as version, sum(net_amount) as net_amount
    from {{ ref('fct_order_lines') }}
    group by order_id

)

select o.order_id, o.version, o.subtotal, l.net_amount
from {{ ref('fct_orders') }} as o
join lines as l
    on l.order_id = o.order_id
    and l.version = o.version
where abs(l.net_amount - o.subtotal) > 0.01
