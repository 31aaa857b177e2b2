-- Every customer of the dimension has exactly one current version.
select customer_id, count_if(is_current) as current_versions
from {{ ref('dim_customers') }}
group by customer_id
having count_if(is_current) <> 1
