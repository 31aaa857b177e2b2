"""Apache Iceberg: the catalog resource (:mod:`resources.iceberg.catalog`), the IO manager
(:mod:`resources.iceberg.io_manager`), what every write shares whichever engine commits
it (:mod:`resources.iceberg.writes`), additive schema evolution
(:mod:`resources.iceberg.schema_evolution`) and the Spark writer
(:mod:`resources.iceberg.spark_writes`)."""
