-- official benchmark: train / val / test of each image
with source as (
    select * from raw_deepfashion_partition
)

select image_name, split from source order by image_name
