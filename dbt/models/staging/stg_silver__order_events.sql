select
    event_id,
    event_type,
    event_time,
    order_id,
    version,
    status,
    currency,
    customer_id,
    country,
    line_count,
    subtotal,
    tax,
    shipping,
    total,
    event_date
from {{ source('silver', 'order_events') }}
