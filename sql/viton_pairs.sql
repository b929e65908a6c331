-- one row per kept line of {train,test}_pairs.txt; a pair naming files that do not exist is kept
-- with *_exists = false; paired = person and cloth share the stem
with source as (
    select * from stg_viton_pairs where kept
),

final as (
    select
        split,
        line_no,
        person,
        cloth,
        paired,
        subset,
        person_exists,
        cloth_exists,
        cloth_mask_exists
    from source
)

select * from final order by split, line_no
