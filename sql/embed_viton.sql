-- the embed job's rows of VITON-HD (flows.jobs.embed_sources): one per flat cloth image that
-- decodes (upper clothes), item_id `<subset>/cloth/<stem>`; a cloth is listed once per pair it
-- is in: the first of its samples in the table's order (split, person) gives its split
with samples as (
    select
        split,
        person,
        subset || '/cloth/' || stem as item_id,
        cloth_path
    from viton_samples
),

probes as (
    select image_path, image_sha1 from viton_image_probes where image_ok
),

clothes as (
    select
        samples.item_id,
        samples.split,
        samples.cloth_path,
        probes.image_sha1
    from samples
    inner join probes on probes.image_path = samples.cloth_path
    qualify row_number() over (partition by samples.item_id order by samples.split, samples.person) = 1
),

final as (
    select
        item_id,
        'viton' as dataset,
        'tops' as semantic_category,
        split,
        cloth_path as image_path,
        image_sha1,
        null::integer as h5_index,
        null::float[] as crop,
        null::varchar as text
    from clothes
)

select * from final order by item_id
