-- one row per usable caption record: 1-based index (as in the release and ind.mat), image name,
-- caption, the four codes as released (category = cate_new, color = color_, gender = gender_,
-- sleeve = sleeve_) and the split
with source as (
    select * from stg_synthesis_captions where kept
),

final as (
    select
        source.index,
        source.name,
        source.caption,
        cast(source.cate_new_raw as tinyint) as category,
        cast(source.color_raw as tinyint) as color,
        cast(source.gender_raw as tinyint) as gender,
        cast(source.sleeve_raw as tinyint) as sleeve,
        source.split
    from source
)

select * from final order by index
