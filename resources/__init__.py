"""Resources and IO managers of the lakehouse.

Typed ``ConfigurableResource`` classes live in one module each (``s3``, ``kafka``,
``iceberg``, ``spark``, ``dbt``); :mod:`resources.environments` binds them to the
settings of the selected environment; :mod:`resources.settings` loads those.
"""
