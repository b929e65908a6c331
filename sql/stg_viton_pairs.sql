-- pair lines with whether the files they name exist; of identical lines in one pairs file the
-- first is kept (the others are quarantined by viton_quarantine)
with source as (
    select * from raw_viton_pairs
),

stems as (
    select * from stg_viton_stems
),

ranked as (
    select
        source.*,
        row_number() over (partition by split, person, cloth order by line_no) as occurrence,
        min(line_no) over (partition by split, person, cloth) as first_line_no
    from source
),

joined as (
    select
        ranked.*,
        ranked.person_stem = ranked.cloth_stem as paired,
        coalesce(person.image_exists, false) as person_exists,
        coalesce(cloth.cloth_exists, false) as cloth_exists,
        coalesce(cloth.cloth_mask_exists, false) as cloth_mask_exists
    from ranked
    left join stems as person on person.split = ranked.split and person.stem = ranked.person_stem
    left join stems as cloth on cloth.split = ranked.split and cloth.stem = ranked.cloth_stem
)

select *, occurrence = 1 as kept from joined
