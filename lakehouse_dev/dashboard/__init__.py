"""``make dashboard``: a Streamlit app on the PostgreSQL star schema (``serving.postgres``).

It shows what gold says, and computes no business figure of its own: every number
on the page is a column of a gold model, read from its exported table (see
:mod:`lakehouse_dev.dashboard.data` for the one query per panel):

- daily net revenue by country, with the 7-day rolling line: ``fct_daily_sales``'s
  ``net_revenue`` and ``revenue_7d``;
- top customers: ``fct_customer_sales`` (``net_revenue``, ``orders``), named from the
  current row of ``dim_customers``;
- the quarantine rate per day: ``silver_quality_daily``, which the
  ``serving/postgres/silver_quality`` export copies from the ``quarantine_rate``
  metadata of each silver events table's materialisation of the day;
- freshness: per table, when it was last exported and its newest day, from the
  export log ``serving_exports``.

Run it with ``make dashboard`` (``python -m lakehouse_dev.dashboard``), on
http://127.0.0.1:8501 by default.
"""
