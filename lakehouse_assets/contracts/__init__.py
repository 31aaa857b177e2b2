"""Data contracts as code: one YAML file per dataset, close to ODCS v3.

A contract (``contracts/<dataset>.yaml``) follows the Open Data Contract Standard
(``apiVersion``, ``kind: DataContract``, ``schema`` objects whose ``properties``
carry ``logicalType``/``physicalType``, ``required``, ``primaryKey``, ``unique``,
``quality`` rules, ``slaProperties``) with five small, explicit extensions that
the pipeline needs and ODCS leaves open:

* ``logicalTypeOptions.enum``: allowed values of a string or integer property;
* ``sequenceColumn`` on a schema object: the version column by which the latest
  row per primary key wins;
* ``rule: <name>`` + ``arguments``: a named built-in check
  (:data:`~lakehouse_assets.contracts.rule_kinds.BUILTIN_RULES`) for what a single
  column comparison cannot say (totals that add up);
* a property's quality rule with a ``mustBe…`` threshold and no ``metric``: a
  comparison of each value;
* ``severity`` on an SLA property.

``tests/unit/test_contracts_conform_to_odcs.py`` holds every shipped contract to the
official ODCS JSON Schema (from the ``open-data-contract-standard`` package) with
exactly these moved to the standard's extension points (``customProperties``,
``type: custom`` rules). The package's pydantic models are not used to load
contracts: below the top level they ignore unknown keys, so a misspelt key would be
dropped silently instead of failing with its line.

A schema object with ``physicalType: topic`` describes the raw Kafka payload: a
record that breaks one of its row rules (unparseable, missing required field,
wrong type, value not allowed, out of range, failed rule) goes to the dataset's
quarantine table. Objects with ``physicalType: table`` are silver tables; their
rules become asset checks.

Loading validates everything up front and fails with a :class:`ContractError`
naming the file, the line and the key (pydantic error locations are mapped back
to the YAML nodes they came from), so a typo in a contract never surfaces later
as a failed run.

Modules: :mod:`~lakehouse_assets.contracts.document` (the YAML document's model),
:mod:`~lakehouse_assets.contracts.model` (the contract the pipeline uses: tables, columns,
row and table rules), :mod:`~lakehouse_assets.contracts.rule_kinds` (every rule kind and
the engines that must implement it), :mod:`~lakehouse_assets.contracts.checker` (semantic checks),
:mod:`~lakehouse_assets.contracts.yaml_lines` (YAML nodes to file lines),
:mod:`~lakehouse_assets.contracts.errors` and :mod:`~lakehouse_assets.contracts.loading`.
"""
