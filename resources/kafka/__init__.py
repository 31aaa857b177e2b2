"""Kafka: the client resource (consumers, producers, admin, SASL from named variables)
and the topic reader that bronze lands from (:mod:`resources.kafka.client`)."""
