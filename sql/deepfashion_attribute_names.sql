-- official benchmark: the attributes (id = line order, 1-based, as in list_attr_img.txt)
with source as (
    select * from raw_deepfashion_attribute_names
)

select attribute_id, attribute_name, attribute_type from source order by attribute_id
