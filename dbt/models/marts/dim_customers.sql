{#-
  One row per customer and version of their attributes (SCD2). The snapshot
  adds a row whenever a newer event names the customer; consecutive rows with
  the same attributes are one version here, so a version starts only when an
  attribute (a tier change, say) changes: valid_from is the event time of the
  first event seen with the new attributes.

  Rebuilt whole on every run, in one INSERT OVERWRITE commit (incremental,
  insert_overwrite, unpartitioned): not `materialized='table'`, whose CREATE OR
  REPLACE would replace the table's main instead of writing the run's audit
  branch (lakehouse_assets/gold/publishing.py).
-#}
{{ config(materialized='incremental', incremental_strategy='insert_overwrite') }}
{%- set attributes = ['name', 'country', 'tier', 'email', 'phone'] %}

with snapshot_rows as (

    select
        customer_id,
        {{ attributes | join(', ') }},
        dbt_valid_from,
        lag(struct({{ attributes | join(', ') }})) over (
            partition by customer_id order by dbt_valid_from
        ) as previous_attributes
    from {{ ref('customers_snapshot') }}

),

versions as (

    select
        customer_id,
        {{ attributes | join(', ') }},
        dbt_valid_from as valid_from
    from snapshot_rows
    -- null-safe: a first row (no previous) or any attribute that changed
    where not (previous_attributes <=> struct({{ attributes | join(', ') }}))

)

select
    customer_id,
    {{ attributes | join(', ') }},
    valid_from,
    lead(valid_from) over (partition by customer_id order by valid_from) as valid_to,
    lead(valid_from) over (partition by customer_id order by valid_from) is null as is_current
from versions
