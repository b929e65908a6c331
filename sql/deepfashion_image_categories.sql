-- official benchmark: each image's category, when that category is listed
with source as (
    select * from raw_deepfashion_image_categories
),

categories as (
    select category_id from raw_deepfashion_category_names
),

final as (
    select source.image_name, source.category_id
    from source
    where source.category_id in (select category_id from categories)
)

select * from final order by image_name
