-- every DeepFashion2 / Simplicity record that could not be used, with the reason and the record
with shape_errors as (
    select dataset, source_file, record_key, reason, raw from raw_deepfashion2_quarantine
),

rejected as (
    -- the items that did not make it into deepfashion2_items (found by key first, so the
    -- geometry of the kept items is not parsed a second time)
    select split, image_id, item_no from raw_deepfashion2_items
    anti join deepfashion2_items using (split, image_id, item_no)
),

bad_items as (
    select
        'deepfashion2' as dataset,
        items.source_file,
        items.image_id || '.json#item' || items.item_no as record_key,
        items.invalid_reason as reason,
        to_json({
            source: items.source, pair_id: items.pair_id, category_id: items.category_id,
            category_name: items.category_name, style: items.style, bounding_box: json(items.bounding_box_json),
            landmarks: json(items.landmarks_json), segmentation: json(items.segmentation_json),
            scale: items.scale, occlusion: items.occlusion, zoom_in: items.zoom_in, viewpoint: items.viewpoint
        })::varchar as raw
    from stg_deepfashion2_items as items
    semi join rejected using (split, image_id, item_no)
),

bad_images as (
    select
        'deepfashion2' as dataset,
        split || '/image' as source_file,
        image_id || '.jpg' as record_key,
        case
            when not has_annos then 'no annotation file ' || split || '/annos/' || image_id || '.json'
            else coalesce(image_error, 'image not probed')
        end as reason,
        split || '/image/' || image_id || '.jpg' as raw
    from stg_deepfashion2_images
    where has_image and (not has_annos or not coalesce(image_ok, false))
),

bad_sketch_images as (
    select
        'deepfashion2' as dataset,
        'simplicity/images' as source_file,
        image_path as record_key,
        error as reason,
        image_path as raw
    from stg_deepfashion2_sketch_images
    where not image_ok
),

final as (
    select * from shape_errors
    union all select * from bad_items
    union all select * from bad_images
    union all select * from bad_sketch_images
)

select * from final order by source_file, record_key
