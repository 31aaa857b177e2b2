{#-
  SCD2 history of the customers' attributes, as silver (latest attributes per
  customer) changes between runs. Timestamp strategy on updated_at (the event
  time of the newest event naming the customer), so a new version is valid
  from the event time that carried it. Every newer event of a customer makes a
  snapshot row, changed attributes or not; dim_customers folds rows with equal
  attributes into one version.
-#}
{% snapshot customers_snapshot %}

{{
  config(
    unique_key='customer_id',
    strategy='timestamp',
    updated_at='updated_at',
    file_format='iceberg',
  )
}}

select customer_id, name, country, tier, email, phone, updated_at
from {{ ref('stg_silver__customers') }}

{% endsnapshot %}
