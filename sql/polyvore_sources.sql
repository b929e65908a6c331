-- per source file: records read = records kept + records quarantined
with read as (
    select source_file, records_read from raw_polyvore_files
    union all
    select 'images' as source_file, count(*) as records_read from stg_polyvore_items where image_found
),

kept as (
    select 'polyvore_item_metadata.json' as source_file, count(*) as n from polyvore_items
    union all
    select variant || '/' || split || '.json', count(*) from polyvore_outfit_items group by variant, split
    union all
    select variant || '/compatibility_' || split || '.txt', count(*) from polyvore_compatibility group by variant, split
    union all
    select variant || '/fill_in_blank_' || split || '.json', count(*) from polyvore_fitb group by variant, split
    union all
    select 'images', count(*) from polyvore_items where image_ok
),

quarantined as (
    select source_file, count(*) as n from polyvore_quarantine group by source_file
),

final as (
    select
        'polyvore' as dataset,
        read.source_file,
        read.records_read,
        coalesce(kept.n, 0) as records_kept,
        coalesce(quarantined.n, 0) as records_quarantined
    from read
    left join kept using (source_file)
    left join quarantined using (source_file)
)

select * from final order by source_file
