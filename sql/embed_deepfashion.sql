-- the embed job's rows of DeepFashion attributes (flows.jobs.embed_sources): one per image that
-- decodes, the file name as item_id
with attributes as (
    select * from deepfashion_attributes where image_ok
),

final as (
    select
        image_id as item_id,
        'deepfashion' as dataset,
        null::varchar as semantic_category,
        split,
        image_path,
        image_sha1,
        null::integer as h5_index,
        null::float[] as crop,
        null::varchar as text
    from attributes
)

select * from final order by item_id
