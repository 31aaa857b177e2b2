"""dagster-openlineage's adapter, naming datasets as storage does and adding the edges.

dagster-openlineage 0.2 names every dataset by its Dagster asset key in one namespace
and, from its sensor, sends materialisations without inputs. This adapter keeps its
event shapes and facet builders and changes two things: datasets carry the identity
of what they are (:mod:`resources.lineage.datasets`: the Kafka topic, the S3 prefix,
the Iceberg table's location, as openlineage-spark names it), and a materialisation's
inputs are the assets it is computed from, so a consumer rebuilds the graph
topic -> bronze -> silver -> gold from the events alone. Column lineage
(``dagster/column_lineage``) points at the same identities; checks become
``dataQualityAssertions`` on the checked dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_openlineage import OpenLineageAdapter
from dagster_openlineage.emitter import OpenLineageEmitter
from dagster_openlineage.facets import (
    build_dagster_asset_check_run_facet,
    build_data_quality_assertions_facet,
    build_datasource_facet,
    build_error_message_facet,
    build_nominal_time_facet,
    build_schema_facet,
)
from dagster_openlineage.utils import to_utc_iso_8601
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    job_type_job,
    output_statistics_output_dataset,
    symlinks_dataset,
)

from resources.lineage.datasets import Dataset, LakehouseDatasets

#: The producer URI of these events: dagster-openlineage's (its adapter builds them).
_INTEGRATION = "DAGSTER"


class LakehouseLineageAdapter(OpenLineageAdapter):
    """An :class:`OpenLineageAdapter` whose asset events name storage and carry inputs."""

    def __init__(
        self, datasets: LakehouseDatasets, client: OpenLineageClient, *, timeout: float
    ) -> None:
        super().__init__(
            namespace=datasets.job_namespace,
            timeout=timeout,
            emitter=OpenLineageEmitter(timeout=timeout, client=client),
        )
        self.datasets = datasets

    # Asset events ----------------------------------------------------------------------

    def asset_materialization_planned(
        self,
        asset_key: dg.AssetKey,
        run_id: str,
        timestamp: float,
        *,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        self._emit_asset(RunState.START, asset_key, run_id, timestamp)

    def asset_materialization(
        self,
        asset_key: dg.AssetKey,
        run_id: str,
        timestamp: float,
        *,
        metadata: Mapping[str, Any] | None = None,
        upstream_asset_keys: Sequence[dg.AssetKey] | None = None,
        partition_key: str | None = None,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        metadata = metadata or {}
        self._emit_asset(
            RunState.COMPLETE,
            asset_key,
            run_id,
            timestamp,
            metadata=metadata,
            upstream=upstream_asset_keys,
            partition_key=partition_key,
        )

    def asset_failed_to_materialize(
        self,
        asset_key: dg.AssetKey,
        run_id: str,
        timestamp: float,
        *,
        error_message: str | None = None,
        stack_trace: str | None = None,
        partition_key: str | None = None,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        run_facets: dict[str, Any] = {}
        if error_message:
            run_facets["errorMessage"] = build_error_message_facet(
                message=error_message, stack_trace=stack_trace
            )
        self._emit_asset(
            RunState.FAIL,
            asset_key,
            run_id,
            timestamp,
            partition_key=partition_key,
            run_facets=run_facets,
        )

    def asset_check_evaluation_planned(
        self,
        asset_key: dg.AssetKey,
        check_name: str,
        run_id: str,
        timestamp: float,
        *,
        standalone: bool,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        # A check's outcome is what matters; its start adds an event per check and run.
        return None

    def asset_check_evaluation(
        self,
        asset_key: dg.AssetKey,
        evaluations: Sequence[dg.AssetCheckEvaluation],
        run_id: str,
        timestamp: float,
        *,
        run_tags: Mapping[str, str] | None = None,
    ) -> None:
        dataset = self.datasets.dataset(asset_key)
        checked = InputDataset(
            namespace=dataset.namespace,
            name=dataset.name,
            facets=_identity_facets(asset_key, dataset, self.datasets.job_namespace),
            inputFacets={"dataQualityAssertions": build_data_quality_assertions_facet(evaluations)},
        )
        self._emit(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=to_utc_iso_8601(timestamp),
                run=Run(runId=run_id, facets=build_dagster_asset_check_run_facet(evaluations)),
                job=self._job(f"{asset_key.to_user_string()}__checks", "CHECK"),
                inputs=[checked],
            )
        )

    # Internals -------------------------------------------------------------------------

    def _emit_asset(
        self,
        state: RunState,
        asset_key: dg.AssetKey,
        run_id: str,
        timestamp: float,
        *,
        metadata: Mapping[str, Any] | None = None,
        upstream: Sequence[dg.AssetKey] | None = None,
        partition_key: str | None = None,
        run_facets: Mapping[str, Any] | None = None,
    ) -> None:
        facets_of_run: dict[str, Any] = dict(run_facets or {})
        nominal = build_nominal_time_facet(partition_key)
        if nominal is not None:
            facets_of_run["nominalTime"] = nominal
        parents = tuple(upstream or ()) or self.datasets.inputs(asset_key)
        inputs = [self._input(key) for key in parents]
        self._emit(
            RunEvent(
                eventType=state,
                eventTime=to_utc_iso_8601(timestamp),
                run=Run(runId=run_id, facets=facets_of_run),
                job=self._job(asset_key.to_user_string(), "ASSET"),
                inputs=inputs,
                outputs=[self._output(asset_key, metadata)],
            )
        )

    def _job(self, name: str, kind: str) -> Job:
        return Job(
            namespace=self.datasets.job_namespace,
            name=name,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration=_INTEGRATION, jobType=kind
                )
            },
        )

    def _input(self, key: dg.AssetKey) -> InputDataset:
        dataset = self.datasets.dataset(key)
        return InputDataset(
            namespace=dataset.namespace,
            name=dataset.name,
            facets=_identity_facets(key, dataset, self.datasets.job_namespace),
        )

    def _output(self, key: dg.AssetKey, metadata: Mapping[str, Any] | None) -> OutputDataset:
        metadata = metadata or {}
        uri = _text(metadata.get("dagster/uri"))
        dataset = self.datasets.dataset(key, uri)
        facets: dict[str, Any] = _identity_facets(key, dataset, self.datasets.job_namespace)
        schema = _value(metadata.get("dagster/column_schema"))
        if isinstance(schema, dg.TableSchema):
            facets["schema"] = build_schema_facet(schema)
        lineage = _value(metadata.get("dagster/column_lineage"))
        if isinstance(lineage, dg.TableColumnLineage):
            facets["columnLineage"] = self._column_lineage(lineage)
        if uri:
            facets["dataSource"] = build_datasource_facet(name=dataset.namespace, uri=uri)
        output_facets: dict[str, Any] = {}
        rows = _value(metadata.get("dagster/row_count"))
        if isinstance(rows, int):
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
            )
        return OutputDataset(
            namespace=dataset.namespace,
            name=dataset.name,
            facets=facets,
            outputFacets=output_facets,
        )

    def _column_lineage(
        self, lineage: dg.TableColumnLineage
    ) -> column_lineage_dataset.ColumnLineageDatasetFacet:
        fields: dict[str, column_lineage_dataset.Fields] = {}
        for column, deps in lineage.deps_by_column.items():
            inputs = []
            for dep in deps:
                source = self.datasets.dataset(dep.asset_key)
                inputs.append(
                    column_lineage_dataset.InputField(
                        namespace=source.namespace, name=source.name, field=dep.column_name
                    )
                )
            fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
        return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)


def _identity_facets(key: dg.AssetKey, dataset: Dataset, job_namespace: str) -> dict[str, Any]:
    """Symlinks: the catalog table (for Iceberg) and the Dagster asset, other names of it."""
    identifiers = []
    if dataset.table is not None:
        identifiers.append(
            symlinks_dataset.Identifier(
                namespace=dataset.table[0], name=dataset.table[1], type="TABLE"
            )
        )
    if dataset.namespace != job_namespace:
        identifiers.append(
            symlinks_dataset.Identifier(
                namespace=job_namespace, name="/".join(key.path), type="DAGSTER_ASSET"
            )
        )
    if not identifiers:
        return {}
    return {"symlinks": symlinks_dataset.SymlinksDatasetFacet(identifiers=identifiers)}


def _value(entry: Any) -> Any:
    """The value of a metadata entry, wrapped (``MetadataValue``) or not."""
    if isinstance(entry, dg.TableSchemaMetadataValue):
        return entry.schema
    if isinstance(entry, dg.TableColumnLineageMetadataValue):
        return entry.column_lineage
    return getattr(entry, "value", entry)


def _text(entry: Any) -> str | None:
    value = _value(entry)
    return value if isinstance(value, str) and value else None
