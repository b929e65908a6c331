-- item metadata joined to its image probe and its fine category name
with source as (
    select * from raw_polyvore_items
),

probes as (
    select * from raw_polyvore_image_probes
),

categories as (
    select category_id, any_value(category_name) as category_name
    from raw_polyvore_categories
    group by category_id
),

joined as (
    select
        source.item_id,
        source.semantic_category,
        try_cast(source.category_id as integer) as category_id,
        categories.category_name,
        source.title,
        source.description,
        source.url_name,
        source.image_path,
        probes.image_path is not null as image_found,
        coalesce(probes.image_ok, false) as image_ok,
        probes.width,
        probes.height,
        probes.image_sha1,
        probes.error as image_error
    from source
    left join probes on probes.image_path = source.image_path
    left join categories on categories.category_id = try_cast(source.category_id as integer)
)

select * from joined
