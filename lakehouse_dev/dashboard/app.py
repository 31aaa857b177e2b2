"""The Streamlit page (``streamlit run``; see :mod:`lakehouse_dev.dashboard`).

Every figure comes from a gold column through :mod:`lakehouse_dev.dashboard.data`;
this module only lays it out: charts, and beside each the figures as a table, so a
reader (or a test) can read exact values.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from lakehouse_dev.dashboard import data
from resources.environments import postgres_password, postgres_port
from resources.serving.postgres import PostgresResource
from resources.settings import load_settings

#: Seconds a query's answer is reused before the page reads PostgreSQL again.
REFRESH_SECONDS = 30


def _database() -> tuple[PostgresResource, str]:
    settings = load_settings()
    postgres = settings.serving.postgres
    resource = PostgresResource(
        host=postgres.host,
        port=postgres_port(settings),
        database=postgres.database,
        user=postgres.user,
        password=postgres_password(settings),
        password_env=postgres.password_env,
        sslmode=postgres.sslmode,
        application_name="lakehouse-dashboard",
    )
    return resource, postgres.schema_name


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner="Reading the star schema ...")
def _panels() -> dict[str, Any]:
    resource, schema = _database()
    with resource.connect(autocommit=True) as conn:
        return {
            "address": f"{resource.address} (schema {schema})",
            "daily": data.daily_revenue(conn, schema).records(),
            "customers": data.top_customers(conn, schema).records(),
            "quality": data.quarantine_rates(conn, schema).records(),
            "freshness": data.freshness(conn, schema).records(),
        }


def _shown(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Values as text, exactly as stored (decimals keep their cents)."""
    frame = pd.DataFrame(records, columns=columns)
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _table(frame: pd.DataFrame) -> None:
    st.table(frame, hide_index=True)


def _revenue_chart(daily: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    frame = daily.assign(
        sales_date=daily["sales_date"].astype(str),
        net_revenue=daily["net_revenue"].astype(float),
        revenue_7d=daily["revenue_7d"].astype(float),
    )
    base = alt.Chart(frame).encode(
        x=alt.X("sales_date:O", title="day", axis=alt.Axis(labelAngle=0)),
        color=alt.Color("country:N", title="country"),
    )
    bars = base.mark_bar(opacity=0.45).encode(
        y=alt.Y("net_revenue:Q", title="net revenue"),
        xOffset="country:N",
        tooltip=["sales_date:O", "country:N", "net_revenue:Q", "revenue_7d:Q"],
    )
    rolling = base.mark_line(point=True, strokeWidth=2).encode(
        y="revenue_7d:Q", strokeDash=alt.value([6, 3])
    )
    return alt.layer(bars, rolling).properties(height=340)


def main() -> None:
    st.set_page_config(page_title="Lakehouse: gold sales", layout="wide")
    panels = _panels()
    st.title("Lakehouse: gold sales")
    st.caption(
        f"PostgreSQL star schema at {panels['address']}. Every figure is a gold model's "
        "column as exported; nothing is computed here."
    )

    st.subheader("Freshness")
    with st.container(key="freshness"):
        _table(
            _shown(
                panels["freshness"],
                ["table_name", "last_exported_at", "newest_day", "days_exported"],
            )
        )

    daily = pd.DataFrame(
        panels["daily"],
        columns=["sales_date", "country", "reporting_currency", "net_revenue", "revenue_7d"],
    )
    currency = daily["reporting_currency"].iloc[0] if len(daily) else ""
    st.subheader(f"Daily net revenue by country ({currency}), with the 7-day rolling line")
    if daily.empty:
        st.info("fct_daily_sales has not been exported yet.")
    else:
        with st.container(key="revenue_chart"):
            st.altair_chart(_revenue_chart(daily), width="stretch")
        st.caption("Bars: fct_daily_sales.net_revenue. Dashed lines: fct_daily_sales.revenue_7d.")
        latest = daily[daily["sales_date"] == daily["sales_date"].max()]
        with st.container(key="latest_day"):
            _table(_shown(latest.to_dict("records"), list(daily.columns)))

    left, right = st.columns(2)
    with left:
        st.subheader("Top customers by net revenue")
        customers = panels["customers"]
        if not customers:
            st.info("fct_customer_sales has not been exported yet.")
        else:
            frame = pd.DataFrame(customers)
            chart = (
                alt.Chart(frame.assign(net_revenue=frame["net_revenue"].astype(float)))
                .mark_bar()
                .encode(
                    x=alt.X("net_revenue:Q", title="net revenue"),
                    y=alt.Y("customer_id:N", sort="-x", title=None),
                    tooltip=["customer_id", "name", "orders", "net_revenue"],
                )
                .properties(height=260)
            )
            with st.container(key="customers_chart"):
                st.altair_chart(chart, width="stretch")
            with st.container(key="top_customers"):
                _table(_shown(customers, list(frame.columns)))
    with right:
        st.subheader("Quarantine rate per day (silver)")
        quality = panels["quality"]
        if not quality:
            st.info("silver_quality_daily has not been exported yet.")
        else:
            frame = pd.DataFrame(quality)
            frame["day"] = frame["day"].astype(str)
            chart = (
                alt.Chart(frame)
                .mark_line(point=True)
                .encode(
                    x=alt.X("day:O", title="day", axis=alt.Axis(labelAngle=0)),
                    y=alt.Y(
                        "quarantine_rate:Q", title="quarantine rate", axis=alt.Axis(format="%")
                    ),
                    color=alt.Color("dataset:N"),
                    tooltip=[
                        "day:O",
                        "dataset:N",
                        "rows_in:Q",
                        "rows_quarantined:Q",
                        "quarantine_rate:Q",
                    ],
                )
                .properties(height=260)
            )
            with st.container(key="quality_chart"):
                st.altair_chart(chart, width="stretch")
            with st.container(key="quarantine_rates"):
                # The rate as a percentage (2 decimals): presentation only.
                shown = [
                    {**row, "quarantine_rate": f"{row['quarantine_rate']:.2%}"} for row in quality
                ]
                _table(
                    _shown(
                        shown,
                        ["day", "dataset", "rows_in", "rows_quarantined", "quarantine_rate"],
                    )
                )


main()
