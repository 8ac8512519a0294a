"""Sends an OpenLineage run shaped like the Spark integration's, with the real openlineage-python client.

An application run (START, later COMPLETE), an action child run that reads a file and writes a table with
outputStatistics (row count and size) and completes, and two START-only child runs (Spark's map_partitions_*
actions, which never send an end).

Usage: openlineage_spark_job.py URL APP_RUN_ID CHILD_RUN_ID MAP_RUN_ID_1 MAP_RUN_ID_2
"""
import sys
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import output_statistics_output_dataset, parent_run
from openlineage.client.transport.http import HttpConfig, HttpTransport

url, app_run, action_run, map1, map2 = sys.argv[1:6]
client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, endpoint="api/v1/lineage")))
producer = "https://github.com/OpenLineage/OpenLineage/tree/1.40.0/integration/spark"
app = Job(namespace="spark-prod", name="orders_app")


def now():
    return datetime.now(timezone.utc).isoformat()


def child(run_id, name):
    parent = parent_run.ParentRunFacet(run=parent_run.Run(runId=app_run),
                                       job=parent_run.Job(namespace=app.namespace, name=app.name))
    return Run(runId=run_id, facets={"parent": parent}), Job(namespace=app.namespace, name=app.name + "." + name)


def emit(state, run, job, **kw):
    client.emit(RunEvent(eventType=state, eventTime=now(), run=run, job=job, producer=producer, **kw))


emit(RunState.START, Run(runId=app_run), app)
for run_id, name in [(map1, "map_partitions_1"), (map2, "map_partitions_2")]:
    emit(RunState.START, *child(run_id, name))
inputs = [InputDataset(namespace="file", name="/data/in/orders.csv")]
outputs = [OutputDataset(namespace="file", name="/data/warehouse/orders",
                         outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                             rowCount=85, size=4096, fileCount=1)})]
run, job = child(action_run, "execute_insert_into_hadoop_fs_relation_command")
emit(RunState.START, run, job, inputs=inputs, outputs=outputs)
emit(RunState.COMPLETE, run, job, inputs=inputs, outputs=outputs)
emit(RunState.COMPLETE, Run(runId=app_run), app)
print("sent", app_run)
