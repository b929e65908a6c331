"""jobs: plain functions that do the work (ingest, train, embed, search, complete, analyses)."""
