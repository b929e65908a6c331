"""demo: `atelier demo`, the whole pipeline on the embedded sample datasets (imported by the CLI only)."""
