{#-
  Per UTC day and place (latitude, longitude): the hours observed, the lowest,
  highest and mean temperature, the precipitation sum and the strongest wind,
  from silver's hourly weather (an HTTP dataset, contracts/weather.yaml). Like
  plain_daily_totals, each run recomputes the days of the lookback window and
  replaces them in one MERGE (merge_with_deletes). Aggregates of doubles are
  rounded, so recomputing an unchanged day gives the same values and merges
  nothing.
-#}
{{
  config(
    materialized='incremental',
    incremental_strategy='merge_with_deletes',
    unique_key=['weather_date', 'latitude', 'longitude'],
    delete_flag_column='_delete',
    partition_by=['weather_date'],
  )
}}

{%- set columns = [
  'weather_date', 'latitude', 'longitude', 'hours', 'temperature_min', 'temperature_max',
  'temperature_mean', 'precipitation_sum', 'wind_speed_max'
] %}

with daily as (

    select
        weather_date,
        latitude,
        longitude,
        count(*) as hours,
        min(temperature_2m) as temperature_min,
        max(temperature_2m) as temperature_max,
        round(avg(temperature_2m), 2) as temperature_mean,
        round(sum(precipitation), 2) as precipitation_sum,
        max(wind_speed_10m) as wind_speed_max
    from {{ ref('stg_silver__weather_hourly') }}
    where {{ lookback_filter('weather_date') }}
    group by weather_date, latitude, longitude

)

{% if is_incremental() %}

, gone as (

    select t.{{ columns | join(', t.') }}
    from {{ this }} as t
    left anti join daily
        on daily.weather_date = t.weather_date
        and daily.latitude = t.latitude
        and daily.longitude = t.longitude
    where {{ lookback_filter('t.weather_date') }}

),

changed as (

    -- days that differ from the table's (a re-run of a window merges nothing)
    select n.*
    from daily as n
    left anti join (select * from {{ this }} where {{ lookback_filter('weather_date') }}) as t
        on {{ rows_equal('n', 't', columns) }}

)

select {{ columns | join(', ') }}, false as _delete from changed
union all
select {{ columns | join(', ') }}, true as _delete from gone

{% else %}

select {{ columns | join(', ') }} from daily

{% endif %}
