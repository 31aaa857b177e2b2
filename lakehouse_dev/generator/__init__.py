"""Synthetic Kafka events for the lakehouse's reference datasets.

One generator feeds the demo, the tests and the benchmarks (ARCHITECTURE.md,
"Event generator"), so it does three jobs:

* :func:`generate` streams the records of one dataset in Kafka-timestamp order:
  valid events plus what a real feed also delivers (late arrivals, out-of-order
  updates, exact re-sends, malformed payloads), each labelled with its ``kind``
  so a test knows what the pipeline should do with it;
* :func:`expected_plain_totals` and :func:`expected_orders` compute the clean
  results from the generated records alone: the oracle the pipeline's silver
  and gold tables are checked against;
* :func:`produce` and the ``lakehouse-events`` CLI (:func:`main`) put the
  records on Kafka.

Generation is a pure function of ``(dataset, GeneratorSpec)``: the same spec
gives byte-identical records, and no wall clock is read while generating.

Time model. Event times are spread over the spec's UTC days, and so are the
Kafka timestamps (arrival times): nothing arrives after the end of
``end_date``. A late record's event time therefore lies at least its delay
before that end, and a topic never holds records stamped in the future, which
Kafka 4 brokers refuse anyway (``message.timestamp.after.max.ms`` defaults to
one hour). For the same reason ``end_date`` defaults to yesterday (UTC), the
last complete day, which is also the last daily partition that exists.

Modules: :mod:`~lakehouse_dev.generator.spec` (what to generate, the record, kinds),
:mod:`~lakehouse_dev.generator.records` (:func:`generate`, summaries, expected results),
one module per dataset (:mod:`~lakehouse_dev.generator.plain`,
:mod:`~lakehouse_dev.generator.purchase_orders`; :mod:`~lakehouse_dev.generator.weather`
makes the HTTP dataset's API documents), arrivals and malformations they
share, :mod:`~lakehouse_dev.generator.kafka` (:func:`produce`) and the CLI
(:mod:`~lakehouse_dev.generator.cli`, also ``python -m lakehouse_dev.generator``).
"""
