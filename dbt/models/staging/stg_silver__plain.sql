select
    id as event_id,
    name,
    amount,
    event_time,
    event_date
from {{ source('silver', 'plain') }}
