"""Sends one OpenLineage run (START then COMPLETE) with the real openlineage-python client.

Usage: openlineage_job.py URL RUN_ID   (URL like http://127.0.0.1:4318; endpoint api/v1/lineage)
"""
import sys
from datetime import datetime, timezone

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import output_statistics_output_dataset
from openlineage.client.transport.http import HttpConfig, HttpTransport

url, run_id = sys.argv[1], sys.argv[2]
client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, endpoint="api/v1/lineage")))
job = Job(namespace="airflow-prod", name="daily_sales.load_fact_orders")
inputs = [InputDataset(namespace="postgres://db:5432", name="sales.orders")]
outputs = [OutputDataset(namespace="s3://warehouse", name="dw.fact_orders",
                         outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=42)})]
now = datetime.now(timezone.utc).isoformat()
client.emit(RunEvent(eventType=RunState.START, eventTime=now, run=Run(runId=run_id), job=job,
                     producer="https://example.com/batchaudit-e2e", inputs=inputs, outputs=outputs))
client.emit(RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(timezone.utc).isoformat(),
                     run=Run(runId=run_id), job=job, producer="https://example.com/batchaudit-e2e",
                     inputs=inputs, outputs=outputs))
print("sent", run_id)
