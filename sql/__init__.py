"""DuckDB SQL, one relation per file, named for what it produces.

`stg_<dataset>_<table>.sql` are views that normalise and check raw relations (`raw_*`, handed
over by the readers in ``etl``); `<dataset>_<table>.sql` are the lake tables written to
`lake/<dataset>/<table>.parquet`; `embed_<dataset>.sql` are the rows the embed job reads from
the lake (``store.run_relation``, values bound as `$name` parameters). ``store.sql`` loads them
by name; nothing else reads them.
"""
