{#-
  Current state of every order. Each run reads the order events of the lookback
  window and merges one row per order: a version already in the table is never
  replaced by an older one, and the first/last/cancel/refund times widen with
  what the window adds, so re-running any window (or running windows out of
  order) converges to the same row.
-#}
{{
  config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='order_id',
    partition_by=['order_date'],
  )
}}

with events as (

    select *
    from {{ ref('stg_silver__order_events') }}
    where {{ lookback_filter('event_date') }}

),

newest_first as (

    select
        *,
        row_number() over (
            partition by order_id
            order by version desc, event_time desc, event_id desc
        ) as newest_rank
    from events

),

window_times as (

    select
        order_id,
        min(event_time) as ordered_at,
        max(event_time) as last_event_at,
        min(case when event_type = 'order_cancelled' then event_time end) as cancelled_at,
        min(case when event_type = 'order_refunded' then event_time end) as refunded_at
    from events
    group by order_id

),

window_orders as (

    select
        latest.order_id,
        latest.version,
        latest.status,
        latest.currency,
        latest.customer_id,
        latest.country,
        latest.subtotal,
        latest.tax,
        latest.shipping,
        latest.total,
        window_times.ordered_at,
        window_times.last_event_at,
        window_times.cancelled_at,
        window_times.refunded_at
    from newest_first as latest
    join window_times on window_times.order_id = latest.order_id
    where latest.newest_rank = 1

),

{% if is_incremental() %}

merged as (

    -- the table's row wins when it holds a newer version than the window's newest
    select
        w.order_id,
        coalesce(t.version > w.version, false) as keep_existing,
        w.version as window_version, t.version as existing_version,
        w.status as window_status, t.status as existing_status,
        w.currency as window_currency, t.currency as existing_currency,
        w.customer_id as window_customer_id, t.customer_id as existing_customer_id,
        w.country as window_country, t.country as existing_country,
        w.subtotal as window_subtotal, t.subtotal as existing_subtotal,
        w.tax as window_tax, t.tax as existing_tax,
        w.shipping as window_shipping, t.shipping as existing_shipping,
        w.total as window_total, t.total as existing_total,
        -- least/greatest skip nulls: a new order has no table row yet
        least(t.ordered_at, w.ordered_at) as ordered_at,
        greatest(t.last_event_at, w.last_event_at) as last_event_at,
        least(t.cancelled_at, w.cancelled_at) as cancelled_at,
        least(t.refunded_at, w.refunded_at) as refunded_at
    from window_orders as w
    left join {{ this }} as t on t.order_id = w.order_id

),

current_state as (

    select
        order_id,
        {%- for column in ['version', 'status', 'currency', 'customer_id', 'country', 'subtotal', 'tax', 'shipping', 'total'] %}
        if(keep_existing, existing_{{ column }}, window_{{ column }}) as {{ column }},
        {%- endfor %}
        ordered_at,
        last_event_at,
        cancelled_at,
        refunded_at
    from merged

)

{% else %}

current_state as (

    select * from window_orders

)

{% endif %}

select
    order_id,
    version,
    status,
    currency,
    customer_id,
    country,
    subtotal,
    tax,
    shipping,
    total,
    ordered_at,
    to_date(ordered_at) as order_date,
    last_event_at,
    cancelled_at,
    refunded_at,
    to_date(refunded_at) as refund_date
from current_state
