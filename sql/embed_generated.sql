-- the embed job's rows of the generated images (flows.jobs.embed_sources): one per usable PNG
-- (probed inside the home when it was recorded), the prompt as its text
with images as (
    select * from generated_images where image_ok
),

final as (
    select
        item_id,
        'generated' as dataset,
        null::varchar as semantic_category,
        null::varchar as split,
        image_path,
        image_sha1,
        null::integer as h5_index,
        null::float[] as crop,
        prompt as text
    from images
)

select * from final order by item_id
