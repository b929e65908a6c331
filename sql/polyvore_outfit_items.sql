-- items of each outfit whose item is in the metadata (the others are quarantined)
with source as (
    select * from stg_polyvore_outfit_items where item_known
),

final as (
    select variant, split, set_id, index, item_id, semantic_category
    from source
)

select * from final order by variant, split, set_id, index
