"""orchestration: Prefect tasks (each wraps one plain function of the layers below), flows and schedules."""
