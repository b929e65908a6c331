-- per source file: records read = records kept + records quarantined; the pairs files' records
-- are lines, a folder's (`<split>/<folder>`) are the referenced files that exist
with read as (
    select source_file, records_read from raw_viton_files
    union all
    select split || '/' || folder as source_file, count(*) filter (where present) as records_read
    from stg_viton_files
    group by split, folder
),

kept as (
    select split || '_pairs.txt' as source_file, count(*) as n from viton_pairs group by split
    union all
    select split || '/' || folder, files_present - files_unusable from viton_folders
),

quarantined as (
    select source_file, count(*) as n from viton_quarantine group by source_file
),

final as (
    select
        'viton' as dataset,
        read.source_file,
        read.records_read,
        coalesce(kept.n, 0) as records_kept,
        coalesce(quarantined.n, 0) as records_quarantined
    from read
    left join kept using (source_file)
    left join quarantined using (source_file)
)

select * from final order by source_file
