-- per source file (a split's annos/ or image/ folder, the Simplicity patterns and images):
-- records read = records kept + records quarantined
with read as (
    select source_file, records_read from raw_deepfashion2_files
    union all
    select split || '/image', count(*) from stg_deepfashion2_images where has_image group by split
    union all
    select 'simplicity/images', count(*) from stg_deepfashion2_sketch_images having count(*) > 0
),

kept as (
    select split || '/annos' as source_file, count(*) as n from deepfashion2_items group by split
    union all
    select split || '/image', count(*) from stg_deepfashion2_images
    where has_image and has_annos and image_ok group by split
    union all select 'simplicity/patterns', count(*) from deepfashion2_sketches
    union all select 'simplicity/images', count(*) from stg_deepfashion2_sketch_images where image_ok
),

quarantined as (
    select source_file, count(*) as n from deepfashion2_quarantine group by source_file
),

final as (
    select
        'deepfashion2' as dataset,
        read.source_file,
        read.records_read,
        coalesce(kept.n, 0) as records_kept,
        coalesce(quarantined.n, 0) as records_quarantined
    from read
    left join kept using (source_file)
    left join quarantined using (source_file)
)

select * from final order by source_file
