-- one row per item of polyvore_item_metadata.json; image_ok is false for missing or broken images
with source as (
    select * from stg_polyvore_items
),

final as (
    select
        item_id,
        semantic_category,
        category_id,
        category_name,
        title,
        description,
        url_name,
        image_path,
        image_ok,
        width,
        height,
        image_sha1
    from source
)

select * from final order by item_id
