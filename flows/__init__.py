"""flows: everything that composes ``etl``, ``store`` and ``models``, in layers.

Each layer is a subpackage and imports only the layers below it (``tests/test_layers.py``):

    cli            typer commands and printing (`atelier ...`)
    demo           `atelier demo`: sample data -> every stage, with a summary (imported by the CLI only)
    orchestration  Prefect tasks, flows and schedules
    evaluation     FITB / compatibility, neighbour precision, structure, retrieval reports
    jobs           ingest, train (one runner for every registered model kind), embed, search,
                   complete, analyses; the model-kind registry (`flows.jobs.kinds`)

Nothing is imported here: `import flows` costs nothing.
"""
