{#-
  Events and amount per (event_date, name). Each run recomputes every day of
  the lookback window from silver and replaces those days here in one MERGE:
  upserts the totals it computes and deletes the window's rows it no longer
  produces (merge_with_deletes), so a window re-run is an exact overwrite.
-#}
{{
  config(
    materialized='incremental',
    incremental_strategy='merge_with_deletes',
    unique_key=['event_date', 'name'],
    delete_flag_column='_delete',
    partition_by=['event_date'],
  )
}}

with totals as (

    select
        event_date,
        name,
        count(*) as events,
        cast(sum(amount) as decimal(28, 2)) as total_amount
    from {{ ref('stg_silver__plain') }}
    where {{ lookback_filter('event_date') }}
    group by event_date, name

)

{% if is_incremental() %}

, gone as (

    select t.event_date, t.name, t.events, t.total_amount
    from {{ this }} as t
    left anti join totals
        on totals.event_date = t.event_date
        and totals.name = t.name
    where {{ lookback_filter('t.event_date') }}

),

changed as (

    -- totals that differ from the table's (a re-run of a window merges nothing)
    select n.*
    from totals as n
    left anti join (select * from {{ this }} where {{ lookback_filter('event_date') }}) as t
        on {{ rows_equal('n', 't', ['event_date', 'name', 'events', 'total_amount']) }}

)

select event_date, name, events, total_amount, false as _delete from changed
union all
select event_date, name, events, total_amount, true as _delete from gone

{% else %}

select event_date, name, events, total_amount from totals

{% endif %}
