-- every image file of <split>/image and every annotation file's image, matched by split and
-- stem, with the image's probe (annotated images are probed; unannotated ones are not opened)
with image_files as (
    select split, image_id, path as image_path from raw_deepfashion2_image_files
),

anno_files as (
    select split, image_id from raw_deepfashion2_anno_files
),

probes as (
    select * from raw_deepfashion2_image_probes
),

joined as (
    select
        coalesce(image_files.split, anno_files.split) as split,
        coalesce(image_files.image_id, anno_files.image_id) as image_id,
        image_files.image_id is not null as has_image,
        anno_files.image_id is not null as has_annos,
        probes.image_ok,
        probes.error as image_error
    from image_files
    full join anno_files
        on anno_files.split = image_files.split and anno_files.image_id = image_files.image_id
    left join probes on probes.image_path = image_files.image_path
)

select * from joined
