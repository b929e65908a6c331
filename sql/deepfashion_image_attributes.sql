-- official benchmark: the attribute ids each image has (value 1 in list_attr_img.txt)
with source as (
    select * from raw_deepfashion_image_attributes
)

select image_name, attribute_ids from source order by image_name
