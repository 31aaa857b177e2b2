{#-
  Conversion into the reporting currency (var reporting_currency), shared by every
  model that reports money: reporting_fx_rates() is the body of an `fx_rates` CTE
  (each seed rate with the day its successor starts, valid_until); with_fx_rate()
  selects every column of `facts` plus `rate`, the rate valid on the fact's day. A
  fact without a rate fails the run instead of silently dropping its amount.
-#}

{% macro reporting_fx_rates() -%}
    select
        currency,
        rate,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_until
    from {{ ref('fx_rates') }}
    where reporting_currency = '{{ var('reporting_currency') }}'
{%- endmacro %}


{% macro with_fx_rate(facts, day_column='sales_date', rates='fx_rates') -%}
    select
        f.*,
        coalesce(fx.rate, raise_error(concat(
            'fx_rates has no rate from ', f.currency, ' to {{ var('reporting_currency') }} valid on ',
            cast(f.{{ day_column }} as string)
        ))) as rate
    from {{ facts }} as f
    left join {{ rates }} as fx
        on fx.currency = f.currency
        and f.{{ day_column }} >= fx.valid_from
        and (fx.valid_until is null or f.{{ day_column }} < fx.valid_until)
{%- endmacro %}
