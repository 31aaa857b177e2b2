"""S3: the client resource with named errors (:mod:`resources.s3.client`), and bronze's
storage on it: Parquet files named by the Kafka offsets they hold
(:mod:`resources.s3.offset_files`), the store that lists, writes and reads them back
exactly once, and the IO manager over that store (:mod:`resources.s3.parquet_store`).

The file layout is the IO manager's business, as every storage layout is: assets hand
over records and offset ranges, never paths."""
