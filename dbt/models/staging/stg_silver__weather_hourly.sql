select
    latitude,
    longitude,
    time as observed_at,
    temperature_2m,
    relative_humidity_2m,
    precipitation,
    wind_speed_10m,
    event_date as weather_date
from {{ source('silver', 'weather_hourly') }}
