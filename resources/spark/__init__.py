"""Spark: the session resource and its configuration (:mod:`resources.spark.resource`,
:mod:`resources.spark.conf`: local mode or client mode on a cluster), starting the JVM
with no secret on its command line and the shared warm driver
(:mod:`resources.spark.driver`), and the project's Java UDFs, compiled on first use from
``resources/spark/java`` (:mod:`resources.spark.udfs`)."""
