"""Gold exported to serving stores: DynamoDB for lookups by key, PostgreSQL as a star schema."""
