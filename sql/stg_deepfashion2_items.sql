-- annotation items (keys and scalar types already checked by the reader) with the geometry
-- parsed from its JSON text (json_transform: a non-number becomes null) and the values checked: source
-- shop/user, category 1-13 named as DeepFashion2 names it, style >= 0, a 4-number bounding box
-- with x2 > x1 and y2 > y1, landmarks in (x, y, v) triples, polygons of (x, y) pairs, the four
-- 1-3 codes; `invalid_reason` lists every failed check (null when the item is usable)
with source as (
    select
        raw_deepfashion2_items.*,
        json_transform(bounding_box_json, '["FLOAT"]') as bounding_box,
        json_transform(landmarks_json, '["FLOAT"]') as landmarks,
        json_transform(segmentation_json, '[["FLOAT"]]') as segmentation
    from raw_deepfashion2_items
),

categories as (
    select * from raw_deepfashion2_categories
),

probes as (
    select * from raw_deepfashion2_image_probes
),

checked as (
    select
        source.*,
        source.split || '/' || source.image_id || '#item' || source.item_no as item_id,
        categories.category_name as canonical_name,
        -- per polygon: 2 = not all numbers, 1 = odd number of coordinates, 0 = fine
        list_transform(source.segmentation,
            lambda p: case when p is null or list_count(p) <> len(p) then 2 when len(p) % 2 = 1 then 1 else 0 end
        ) as polygon_checks,
        source.bounding_box is null or list_count(source.bounding_box) <> len(source.bounding_box) as bad_bounding_box,
        source.landmarks is null or list_count(source.landmarks) <> len(source.landmarks) as bad_landmarks,
        probes.image_path is not null as image_found,
        coalesce(probes.image_ok, false) as image_ok,
        probes.width,
        probes.height,
        probes.image_sha1,
        probes.error as image_error
    from source
    left join categories on categories.category_id = source.category_id
    left join probes on probes.image_path = source.image_path
),

counted as (
    select
        checked.*,
        segmentation is null or list_position(polygon_checks, 2) is not null as bad_segmentation,
        len(list_filter(polygon_checks, lambda c: c = 1)) as n_odd_polygons
    from checked
),

reasons as (
    select
        counted.*,
        nullif(concat_ws('; ',
            case when source not in ('shop', 'user') then 'source ''' || source || ''' is not shop or user' end,
            case when canonical_name is null then 'category_id ' || category_id || ' is not 1-13'
                when category_name <> canonical_name
                then 'category_name ''' || category_name || ''' is not ''' || canonical_name || ''' (category_id '
                    || category_id || ')' end,
            case when style < 0 then 'style ' || style || ' is negative' end,
            case when bad_bounding_box then 'bounding_box is not a list of numbers'
                when len(bounding_box) <> 4 then 'bounding_box has ' || len(bounding_box) || ' numbers, expected 4'
                when bounding_box[3] <= bounding_box[1] or bounding_box[4] <= bounding_box[2]
                then 'bounding_box ' || bounding_box::varchar || ' has x2 <= x1 or y2 <= y1' end,
            case when bad_landmarks then 'landmarks is not a list of numbers' end,
            case when bad_segmentation then 'segmentation is not a list of lists of numbers' end,
            case when len(landmarks) % 3 <> 0
                then 'landmarks has ' || len(landmarks) || ' numbers, not a multiple of 3 (x, y, v)' end,
            case when n_odd_polygons > 0
                then n_odd_polygons || ' segmentation polygon(s) with an odd number of coordinates' end,
            case when scale not between 1 and 3 then 'scale ' || scale || ' is not 1-3' end,
            case when occlusion not between 1 and 3 then 'occlusion ' || occlusion || ' is not 1-3' end,
            case when zoom_in not between 1 and 3 then 'zoom_in ' || zoom_in || ' is not 1-3' end,
            case when viewpoint not between 1 and 3 then 'viewpoint ' || viewpoint || ' is not 1-3' end
        ), '') as invalid_reason
    from counted
)

select * from reasons
