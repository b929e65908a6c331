-- every DeepFashion record that could not be used, with the reason and the record as read
with shape_errors as (
    select dataset, source_file, record_key, reason, raw from raw_deepfashion_quarantine
),

bad_codes as (
    select
        'deepfashion' as dataset,
        'attributes.csv' as source_file,
        'line ' || line_no as record_key,
        invalid_reason as reason,
        raw
    from stg_deepfashion_attributes
    where invalid_reason is not null
),

duplicates as (
    select
        'deepfashion' as dataset,
        'attributes.csv' as source_file,
        'line ' || line_no as record_key,
        'duplicate filename ' || filename || ': line ' || first_line_no || ' kept; values '
            || case when same_as_first then 'agree' else 'conflict' end as reason,
        raw
    from stg_deepfashion_attributes
    where invalid_reason is null and occurrence > 1
),

bad_images as (
    select
        'deepfashion' as dataset,
        'images' as source_file,
        attributes.filename as record_key,
        probes.error || ' (' || probes.image_path || ')' as reason,
        probes.image_path as raw
    from stg_deepfashion_attributes as attributes
    join raw_deepfashion_image_probes as probes on probes.image_path = attributes.image_path
    where attributes.kept and not probes.image_ok
),

unknown_categories as (
    select
        'deepfashion' as dataset,
        source_file,
        image_name as record_key,
        'category_label ' || category_id || ' is not in list_category_cloth.txt' as reason,
        raw
    from raw_deepfashion_image_categories
    where category_id not in (select category_id from raw_deepfashion_category_names)
),

final as (
    select * from shape_errors
    union all select * from bad_codes
    union all select * from duplicates
    union all select * from bad_images
    union all select * from unknown_categories
)

select * from final order by source_file, record_key
