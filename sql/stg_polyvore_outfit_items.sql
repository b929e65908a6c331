-- outfit items of <variant>/<split>.json with the `<set_id>_<index>` token that other files use
with source as (
    select * from raw_polyvore_outfit_items
),

items as (
    select item_id, semantic_category from raw_polyvore_items
),

joined as (
    select
        source.variant,
        source.split,
        source.set_id,
        source.index,
        source.item_id,
        source.source_file,
        source.set_id || '_' || source.index as token,
        items.semantic_category,
        items.item_id is not null as item_known
    from source
    left join items on items.item_id = source.item_id
)

select * from joined
