select
    order_id,
    version,
    event_id,
    event_type,
    event_time,
    status,
    currency,
    customer_id,
    country,
    subtotal,
    tax,
    shipping,
    total,
    event_date
from {{ source('silver', 'orders') }}
