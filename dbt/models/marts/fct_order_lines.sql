{#-
  The lines of each order's current version. Silver holds only the latest
  version's lines, so every order with an event in the lookback window gets the
  lines of its current version, wherever that version's day lies (as fct_orders
  takes that version's state, so an order and its lines agree): lines that differ
  are upserted, and the order's lines in the table that its current version no
  longer has (an amendment removed them) are deleted, in the same MERGE commit
  (strategy merge_with_deletes, macros/strategies/merge_with_deletes.sql).
-#}
{{
  config(
    materialized='incremental',
    incremental_strategy='merge_with_deletes',
    unique_key=['order_id', 'line_number'],
    delete_flag_column='_delete',
    partition_by=['event_date'],
  )
}}

{%- set columns = [
    'order_id', 'line_number', 'version', 'sku', 'quantity', 'unit_price', 'discount',
    'gross_amount', 'discount_amount', 'net_amount', 'event_date',
] %}

with window_orders as (

    -- orders with an event in the lookback window
    select distinct order_id
    from {{ ref('stg_silver__order_events') }}
    where {{ lookback_filter('event_date') }}

),

window_lines as (

    select
        l.order_id,
        l.line_number,
        l.version,
        l.sku,
        l.quantity,
        l.unit_price,
        l.discount,
        -- exact amounts: unit_price has 2 decimals and discount 4, so 6 decimals lose nothing
        cast(l.quantity * l.unit_price as decimal(20, 2)) as gross_amount,
        cast(l.quantity * l.unit_price * l.discount as decimal(24, 6)) as discount_amount,
        cast(l.quantity * l.unit_price * (1 - l.discount) as decimal(24, 6)) as net_amount,
        l.event_date
    from {{ ref('stg_silver__order_lines') }} as l
    left semi join window_orders as o on o.order_id = l.order_id

)

{% if is_incremental() %}

, removed_lines as (

    -- lines of the window's orders that their current version no longer has
    select existing.*
    from {{ this }} as existing
    left semi join window_orders as orders_in_window
        on orders_in_window.order_id = existing.order_id
    left anti join window_lines as still_there
        on still_there.order_id = existing.order_id
        and still_there.line_number = existing.line_number

),

changed_lines as (

    -- lines that differ from the table's (a re-run of a window merges nothing)
    select w.*
    from window_lines as w
    left anti join {{ this }} as t on {{ rows_equal('w', 't', columns) }}

)

select {{ columns | join(', ') }}, false as _delete from changed_lines
union all
select {{ columns | join(', ') }}, true as _delete from removed_lines

{% else %}

select * from window_lines

{% endif %}
