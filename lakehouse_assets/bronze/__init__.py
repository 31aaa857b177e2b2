"""Bronze: the immutable landing copy of every Kafka-fed dataset (S3 Parquet)."""
