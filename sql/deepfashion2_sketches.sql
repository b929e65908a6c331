-- Simplicity sewing patterns: the line drawing and the photos of garments made from it, each
-- with whether it exists and decodes (image probe)
with source as (
    select * from raw_deepfashion2_patterns
),

probes as (
    select image_path, image_ok from raw_deepfashion2_image_probes
),

photos as (
    select
        source.pattern_id,
        list(coalesce(probes.image_ok, false) order by photo.position) as other_images_ok
    from source
    cross join unnest(source.other_images) with ordinality as photo(path, position)
    left join probes on probes.image_path = photo.path
    group by source.pattern_id
),

final as (
    select
        source.pattern_id,
        source.line_image,
        coalesce(line.image_ok, false) as line_image_ok,
        source.other_images,
        coalesce(photos.other_images_ok, []::boolean[]) as other_images_ok,
        len(source.other_images)::int as n_other_images
    from source
    left join probes as line on line.image_path = source.line_image
    left join photos using (pattern_id)
)

select * from final order by pattern_id
