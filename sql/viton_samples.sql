-- one row per person of each split: the path of each of its seven files and whether it exists,
-- the person image's probe, the parse maps' Pillow mode / palette flag, whether the parse map has
-- an upper-clothes region (labels 5/6/7), and the 90/10 subset; complete = all usable
with persons as (
    select distinct split, person, person_stem as stem, subset from stg_viton_pairs where kept
),

stems as (
    select * from stg_viton_stems
),

final as (
    select
        persons.split,
        persons.subset,
        persons.person,
        persons.stem,
        stems.image_path,
        stems.image_exists,
        coalesce(stems.image_ok, false) as image_ok,
        stems.width,
        stems.height,
        stems.cloth_path,
        stems.cloth_exists,
        stems.cloth_mask_path,
        stems.cloth_mask_exists,
        stems.parse_path,
        stems.parse_exists,
        stems.parse_mode,
        coalesce(stems.parse_mode = 'P', false) as parse_palette,
        coalesce(stems.parse_has_upper_clothes, false) as upper_clothes_present,
        stems.parse_agnostic_path,
        stems.parse_agnostic_exists,
        coalesce(stems.parse_agnostic_mode = 'P', false) as parse_agnostic_palette,
        stems.openpose_img_path,
        stems.openpose_img_exists,
        stems.openpose_json_path,
        stems.openpose_json_exists,
        stems.image_usable and stems.cloth_usable and stems.cloth_mask_usable and stems.parse_usable
            and stems.parse_agnostic_usable and stems.openpose_img_usable and stems.openpose_json_usable
            and coalesce(stems.parse_has_upper_clothes, false) as complete
    from persons
    left join stems on stems.split = persons.split and stems.stem = persons.stem
)

select * from final order by split, person
