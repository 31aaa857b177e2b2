select
    customer_id,
    name,
    country,
    tier,
    email,
    phone,
    updated_at,
    event_date
from {{ source('silver', 'customers') }}
