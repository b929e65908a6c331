-- one row per image of Img/G2.h5 (image i belongs to caption record i): where to read it
-- (etl.synthesis.synthesis_images(h5_path, [index])) and whether its caption record is usable
with release as (
    select * from raw_synthesis_release
),

images as (
    select unnest(range(1, n_images + 1)) as index, h5_path from release
),

records as (
    select index, name, kept from stg_synthesis_captions
),

final as (
    select
        cast(images.index as integer) as index,
        records.name,
        images.h5_path,
        coalesce(records.kept, false) as captioned
    from images
    left join records using (index)
)

select * from final order by index
