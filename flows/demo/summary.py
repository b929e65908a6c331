"""What is in the lake, as a few tables a person can read (printed by `atelier demo`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from store import Lake, query

SUMMARY_QUERIES = {
    "Records per dataset: read = kept + quarantined": """
        select dataset, count(*) as files, sum(records_read) as read, sum(records_kept) as kept,
            sum(records_quarantined) as quarantined
        from sources group by 1 order by 1""",
    "Polyvore items per semantic category": """
        select semantic_category, count(*) as items, count(*) filter (where image_ok) as images_ok
        from polyvore_items group by 1 order by 2 desc""",
    "Polyvore outfits and questions per variant and split": """
        select o.variant, o.split, count(*) as outfits, avg(o.n_items)::decimal(4,2) as items_per_outfit,
            (select count(*) from polyvore_outfits4 f where f.variant = o.variant and f.split = o.split) as outfits4,
            (select count(*) from polyvore_fitb f where f.variant = o.variant and f.split = o.split) as fitb,
            (select count(*) from polyvore_compatibility c where c.variant = o.variant and c.split = o.split) as compatibility
        from polyvore_outfits o group by 1, 2 order by 1, 2""",
    "DeepFashion attributes: classes, missing labels, majority-class baseline": """
        with long as (
            unpivot (select neck, sleeve_length, pattern, neck_missing, sleeve_length_missing, pattern_missing
                     from deepfashion_attributes)
            on (neck, neck_missing) as neck, (sleeve_length, sleeve_length_missing) as sleeve_length,
               (pattern, pattern_missing) as pattern
            into name attribute value code, missing
        ),
        counts as (select attribute, code, count(*) as n from long where not missing group by 1, 2)
        select attribute, count(*) as classes_seen, sum(n) as labelled,
            (select count(*) from long l where l.attribute = c.attribute and l.missing) as missing,
            (max(n) / sum(n))::decimal(4,3) as majority_baseline
        from counts c group by 1 order by 1""",
    "VITON-HD persons per split and subset": """
        select split, subset, count(*) as persons, count(*) filter (where complete) as complete,
            count(*) filter (where not upper_clothes_present) as no_garment_region
        from viton_samples group by 1, 2 order by 1, 2""",
    "Fashion Synthesis captions per split": """
        select split, count(*) as captions, any_value(caption) as example from synthesis_captions group by 1 order by 1""",
    "Quarantine: records that could not be used": """
        select dataset, source_file, count(*) as records, any_value(reason) as example_reason
        from quarantine group by 1, 2 order by 1, 2""",
}


def print_summary(home: Path | str, console: Console) -> None:
    tables = Lake(home).tables()
    console.print(f"\n[bold]Lake at {Path(home) / 'lake'}[/bold]: {len(tables)} tables; query them with `atelier sql`.")
    for title, sql in SUMMARY_QUERIES.items():
        try:
            result = query(home, sql)
        except Exception as e:  # a dataset not ingested yet: say so, go on
            console.print(f"[dim]{title}: not available ({str(e).splitlines()[0]})[/dim]")
            continue
        t = Table(*result.column_names, title=title, title_justify="left")
        for row in result.to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        console.print(t)
