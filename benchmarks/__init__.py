"""Benchmarks of the lakehouse, run by ``make bench`` (``python -m benchmarks``).

:mod:`benchmarks.bronze_landing` measures the bronze landing against a plain
confluent-kafka consume loop on an isolated local stack and writes
``benchmarks/results.json``; :mod:`benchmarks.workers` holds the measured child
processes, :mod:`benchmarks.isolated` the throwaway stack they run against.
"""
