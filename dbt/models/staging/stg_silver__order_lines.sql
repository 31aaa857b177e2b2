select
    order_id,
    line_number,
    version,
    sku,
    quantity,
    unit_price,
    discount,
    event_date
from {{ source('silver', 'order_lines') }}
