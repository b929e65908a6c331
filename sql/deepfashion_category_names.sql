-- official benchmark: the categories (id = line order, 1-based, as in list_category_img.txt)
with source as (
    select * from raw_deepfashion_category_names
)

select category_id, category_name, category_type from source order by category_id
