"""flows: the jobs (ingest, demo) as plain functions, the Prefect flows that schedule them, and
the `atelier` CLI. Imports point one way: flows -> etl, store, models."""

from flows.demo import run_demo
from flows.ingest import CountMismatchError, IngestResult, ingest_deepfashion, ingest_polyvore

__all__ = ["CountMismatchError", "IngestResult", "ingest_deepfashion", "ingest_polyvore", "run_demo"]
