-- one row per usable annotation item; bbox as four columns (pixel edges as annotated), geometry
-- as float32 lists; image_ok is false for a missing or broken image
with source as (
    select * from stg_deepfashion2_items where invalid_reason is null
),

final as (
    select
        item_id,
        image_id,
        split,
        item_no,
        pair_id,
        source,
        style,
        category_id,
        category_name,
        bounding_box[1] as bbox_x1,
        bounding_box[2] as bbox_y1,
        bounding_box[3] as bbox_x2,
        bounding_box[4] as bbox_y2,
        (len(landmarks) // 3)::int as n_landmarks,
        landmarks,
        segmentation,
        len(segmentation)::int as n_polygons,
        occlusion,
        scale,
        viewpoint,
        zoom_in,
        image_path,
        image_ok,
        width,
        height,
        image_sha1
    from source
)

select * from final order by split, image_id, item_no
