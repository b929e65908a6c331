-- per source file: records read = records kept + records quarantined
with read as (
    select source_file, records_read from raw_deepfashion_files
    union all
    select 'images' as source_file, count(*) as records_read
    from stg_deepfashion_attributes as attributes
    join raw_deepfashion_image_probes as probes on probes.image_path = attributes.image_path
    where attributes.kept
),

kept as (
    select 'attributes.csv' as source_file, count(*) as n from deepfashion_attributes
    union all select 'images', count(*) from deepfashion_attributes where image_ok
    union all select 'Anno/list_attr_cloth.txt', count(*) from raw_deepfashion_attribute_names
    union all select 'Anno/list_category_cloth.txt', count(*) from raw_deepfashion_category_names
    union all select 'Anno/list_attr_img.txt', count(*) from raw_deepfashion_image_attributes
    union all
    select 'Anno/list_category_img.txt', count(*) from raw_deepfashion_image_categories
    where category_id in (select category_id from raw_deepfashion_category_names)
    union all select 'Eval/list_eval_partition.txt', count(*) from raw_deepfashion_partition
),

quarantined as (
    select source_file, count(*) as n from deepfashion_quarantine group by source_file
),

final as (
    select
        'deepfashion' as dataset,
        read.source_file,
        read.records_read,
        coalesce(kept.n, 0) as records_kept,
        coalesce(quarantined.n, 0) as records_quarantined
    from read
    left join kept using (source_file)
    left join quarantined using (source_file)
)

select * from final order by source_file
