"""Bronze: the immutable landing copy of every dataset (S3 Parquet): Kafka records as
received, or an HTTP source's responses (kept raw) as typed rows."""
