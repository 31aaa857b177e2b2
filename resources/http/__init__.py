"""HTTP sources: streamed, retried, resumable downloads into the object store, and the
response formats (JSON, NDJSON, CSV, Parquet) read back as records."""
