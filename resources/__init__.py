"""The integrations: typed Dagster resources and IO managers, one package each.

``kafka/``, ``s3/`` (with bronze's offset-named Parquet files), ``iceberg/``, ``spark/``
(with the Java UDFs in ``spark/java``) and ``dbt/``; each package's docstring says
what it owns. Beside them: :mod:`resources.settings` loads ``config/lakehouse.yaml``,
:mod:`resources.environments` binds the resources to the selected environment,
:mod:`resources.errors` holds the named errors every integration raises,
:mod:`resources.run_launcher` is the single-host run launcher of ``config/dagster.yaml``.
Nothing here imports :mod:`lakehouse_assets` or :mod:`lakehouse_dev`.
"""
