-- one row per split and stem (persons and cloths): every folder's file side by side, with what
-- the image probes say of it; usable = exists and decodes (and, for parse maps, is palette 'P'),
-- the same rule as stg_viton_files applies file by file; a parse map without any upper-clothes
-- label (5 upper clothes, 6 dress, 7 coat) has an empty garment mask
with source as (
    select * from raw_viton_stems
),

probes as (
    select image_path, image_ok, mode, labels, width, height from raw_viton_image_probes
),

joined as (
    select
        source.*,
        coalesce(image.image_ok, false) as image_ok,
        image.width,
        image.height,
        parse.mode as parse_mode,
        parse_agnostic.mode as parse_agnostic_mode,
        list_has_any(parse.labels, [5, 6, 7]::smallint[]) as parse_has_upper_clothes,
        coalesce(image.image_ok, false) as image_usable,
        coalesce(cloth.image_ok, false) as cloth_usable,
        coalesce(cloth_mask.image_ok, false) as cloth_mask_usable,
        coalesce(parse.image_ok and parse.mode = 'P', false) as parse_usable,
        coalesce(parse_agnostic.image_ok and parse_agnostic.mode = 'P', false) as parse_agnostic_usable,
        coalesce(openpose_img.image_ok, false) as openpose_img_usable,
        source.openpose_json_exists as openpose_json_usable
    from source
    left join probes as image on image.image_path = source.image_path
    left join probes as cloth on cloth.image_path = source.cloth_path
    left join probes as cloth_mask on cloth_mask.image_path = source.cloth_mask_path
    left join probes as parse on parse.image_path = source.parse_path
    left join probes as parse_agnostic on parse_agnostic.image_path = source.parse_agnostic_path
    left join probes as openpose_img on openpose_img.image_path = source.openpose_img_path
)

select * from joined
