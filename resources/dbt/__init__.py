"""dbt: the project, its generated profile and vars (:mod:`resources.dbt.project`), and
dbt run in the process's own Spark session (:mod:`resources.dbt.in_process`)."""
