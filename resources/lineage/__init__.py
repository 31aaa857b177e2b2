"""OpenLineage: the transport of every producer, dataset names, the Dagster sensor's adapter."""
