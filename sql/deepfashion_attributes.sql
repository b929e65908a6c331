-- one row per image of attributes.csv: code (missing = number of real classes), raw value and a
-- missing flag per attribute, the hash split and the image probe
with source as (
    select * from stg_deepfashion_attributes where kept
),

probes as (
    select * from raw_deepfashion_image_probes
),

final as (
    select
        source.filename as image_id,
        source.split,
        source.neck,
        source.sleeve_length,
        source.pattern,
        source.neck_raw,
        source.neck_missing,
        source.sleeve_length_raw,
        source.sleeve_length_missing,
        source.pattern_raw,
        source.pattern_missing,
        source.image_path,
        coalesce(probes.image_ok, false) as image_ok,
        probes.width,
        probes.height,
        probes.image_sha1
    from source
    left join probes on probes.image_path = source.image_path
)

select * from final order by image_id
