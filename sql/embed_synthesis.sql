-- the embed job's rows of Fashion Synthesis (flows.jobs.embed_sources): one per image of G2.h5
-- with a usable caption record, the image name (nameList) as item_id and the caption as text.
-- $h5_files: [{h5_path, size, mtime_ns}] of the h5 files that exist (stat by the caller: not in
-- the lake); images of other files are left out. image_sha1 = sha1 of h5 path, size, mtime_ns
-- and index joined by U+001F (the h5 file is read per image, not hashed whole).
with h5_files as (
    select file.h5_path, file.size, file.mtime_ns
    from (select unnest($h5_files::struct(h5_path varchar, size bigint, mtime_ns bigint)[]) as file)
),

images as (
    select * from synthesis_images where captioned
),

captions as (
    select index, caption, split from synthesis_captions
),

final as (
    select
        images.name as item_id,
        'synthesis' as dataset,
        null::varchar as semantic_category,
        captions.split,
        images.h5_path as image_path,
        sha1(concat_ws(chr(31), images.h5_path, h5_files.size::varchar, h5_files.mtime_ns::varchar,
            images.index::varchar)) as image_sha1,
        images.index as h5_index,
        null::float[] as crop,
        captions.caption as text
    from images
    inner join captions on captions.index = images.index
    inner join h5_files on h5_files.h5_path = images.h5_path
)

select * from final order by item_id
