"""Gold exported to serving stores: DynamoDB for lookups by key."""
