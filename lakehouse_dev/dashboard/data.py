"""The dashboard's queries: one per panel, each a plain read of exported gold columns.

Ordering and limiting are the only operations: no sum, average or ratio is computed
here (the figures are gold's; see :mod:`lakehouse_dev.dashboard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

#: How many customers the "top customers" panel lists.
TOP_CUSTOMERS = 10


@dataclass(frozen=True)
class Panel:
    """A panel's rows, as the query returned them."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _read(conn: psycopg.Connection, query: sql.Composed, params: tuple[Any, ...] = ()) -> Panel:
    with conn.cursor() as cur:
        cur.execute(query, params)
        columns = [d.name for d in cur.description or []]
        return Panel(columns, cur.fetchall())


def _exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    found = conn.execute("select to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
    return found is not None and found[0] is not None


def daily_revenue(conn: psycopg.Connection, schema: str) -> Panel:
    """fct_daily_sales: net revenue and its 7-day rolling sum per day and country."""
    if not _exists(conn, schema, "fct_daily_sales"):
        return Panel(
            ["sales_date", "country", "reporting_currency", "net_revenue", "revenue_7d"], []
        )
    return _read(
        conn,
        sql.SQL(
            "select sales_date, country, reporting_currency, net_revenue, revenue_7d "
            "from {} order by sales_date, country"
        ).format(sql.Identifier(schema, "fct_daily_sales")),
    )


def top_customers(conn: psycopg.Connection, schema: str, limit: int = TOP_CUSTOMERS) -> Panel:
    """fct_customer_sales' customers with the highest net revenue, named from the
    current version in dim_customers (if exported)."""
    columns = [
        "customer_id",
        "name",
        "country",
        "tier",
        "orders",
        "reporting_currency",
        "net_revenue",
    ]
    if not _exists(conn, schema, "fct_customer_sales"):
        return Panel(columns, [])
    if _exists(conn, schema, "dim_customers"):
        query = sql.SQL(
            "select s.customer_id, c.name, c.country, c.tier, s.orders, s.reporting_currency, "
            "s.net_revenue from {} as s left join {} as c "
            "on c.customer_id = s.customer_id and c.is_current "
            "order by s.net_revenue desc, s.customer_id limit %s"
        ).format(
            sql.Identifier(schema, "fct_customer_sales"), sql.Identifier(schema, "dim_customers")
        )
    else:
        query = sql.SQL(
            "select customer_id, null as name, null as country, null as tier, orders, "
            "reporting_currency, net_revenue from {} order by net_revenue desc, customer_id limit %s"
        ).format(sql.Identifier(schema, "fct_customer_sales"))
    return _read(conn, query, (limit,))


def quarantine_rates(conn: psycopg.Connection, schema: str) -> Panel:
    """silver_quality_daily: each dataset's quarantine rate per day (silver's metadata)."""
    if not _exists(conn, schema, "silver_quality_daily"):
        return Panel(["day", "dataset", "rows_in", "rows_quarantined", "quarantine_rate"], [])
    return _read(
        conn,
        sql.SQL(
            "select day, dataset, rows_in, rows_quarantined, quarantine_rate "
            "from {} order by day, dataset"
        ).format(sql.Identifier(schema, "silver_quality_daily")),
    )


def freshness(conn: psycopg.Connection, schema: str) -> Panel:
    """Per exported table: the last export's time and the newest day exported."""
    if not _exists(conn, schema, "serving_exports"):
        return Panel(["table_name", "last_exported_at", "newest_day", "days_exported"], [])
    return _read(
        conn,
        sql.SQL(
            "select table_name, max(exported_at) as last_exported_at, "
            "max(nullif(partition_key, '')) as newest_day, "
            "count(nullif(partition_key, '')) as days_exported "
            "from {} group by table_name order by table_name"
        ).format(sql.Identifier(schema, "serving_exports")),
    )
