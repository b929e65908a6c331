-- the embed job's rows of DeepFashion2 (flows.jobs.embed_sources): every usable item's box crop,
-- then the Simplicity line drawings and photos that decode.
-- $semantic: [{category_id, semantic_category}] (DeepFashion2 category -> Polyvore semantic
-- category). A crop's image_sha1 is sha1 of the file's SHA-1 and the four box edges joined by
-- U+001F, each edge as Python's str() of the float32 widened to double (DuckDB's double -> varchar
-- is the same shortest round-trip text), so a box change re-embeds the crop.
with semantic as (
    select mapping.category_id, mapping.semantic_category
    from (select unnest($semantic::struct(category_id integer, semantic_category varchar)[]) as mapping)
),

items as (
    select * from deepfashion2_items where image_ok
),

crops as (
    select
        items.item_id,
        'deepfashion2' as dataset,
        semantic.semantic_category,
        items.split,
        items.image_path,
        sha1(concat_ws(chr(31), items.image_sha1, items.bbox_x1::double::varchar, items.bbox_y1::double::varchar,
            items.bbox_x2::double::varchar, items.bbox_y2::double::varchar)) as image_sha1,
        null::integer as h5_index,
        [items.bbox_x1, items.bbox_y1, items.bbox_x2, items.bbox_y2] as crop,
        items.category_name as text
    from items
    left join semantic on semantic.category_id = items.category_id
),

sketches as (
    select * from deepfashion2_sketches
),

drawings as (
    select pattern_id, 'line' as part, line_image as image_path from sketches
    union all
    select sketches.pattern_id, photo.position::varchar as part, photo.image_path
    from sketches
    cross join unnest(sketches.other_images) with ordinality as photo(image_path, position)
),

probes as (
    select image_path, image_sha1 from deepfashion2_image_probes where image_ok
),

simplicity as (
    select
        'simplicity/' || drawings.pattern_id || '/' || drawings.part as item_id,
        'deepfashion2' as dataset,
        null::varchar as semantic_category,
        'simplicity' as split,
        drawings.image_path,
        probes.image_sha1,
        null::integer as h5_index,
        null::float[] as crop,
        null::varchar as text
    from drawings
    inner join probes on probes.image_path = drawings.image_path
),

final as (
    select * from crops
    union all
    select * from simplicity
)

select * from final order by item_id
