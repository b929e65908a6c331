-- the embed job's rows of Polyvore (flows.jobs.embed_sources): one per item with a usable image;
-- the title is the item's text
with items as (
    select * from polyvore_items where image_ok
),

final as (
    select
        item_id,
        'polyvore' as dataset,
        semantic_category,
        null::varchar as split,
        image_path,
        image_sha1,
        null::integer as h5_index,
        null::float[] as crop,
        title as text
    from items
)

select * from final order by item_id
