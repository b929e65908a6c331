-- outfits with exactly one item in each of shoes, tops, accessories, bottoms (slot order of the
-- research code); items of other categories do not disqualify an outfit
with source as (
    select * from polyvore_outfit_items
    where semantic_category in ('shoes', 'tops', 'accessories', 'bottoms')
),

per_outfit as (
    select
        variant,
        split,
        set_id,
        count(*) filter (where semantic_category = 'shoes') as n_shoes,
        count(*) filter (where semantic_category = 'tops') as n_tops,
        count(*) filter (where semantic_category = 'accessories') as n_accessories,
        count(*) filter (where semantic_category = 'bottoms') as n_bottoms,
        any_value(item_id) filter (where semantic_category = 'shoes') as shoes,
        any_value(item_id) filter (where semantic_category = 'tops') as tops,
        any_value(item_id) filter (where semantic_category = 'accessories') as accessories,
        any_value(item_id) filter (where semantic_category = 'bottoms') as bottoms
    from source
    group by variant, split, set_id
),

final as (
    select variant, split, set_id, shoes, tops, accessories, bottoms
    from per_outfit
    where n_shoes = 1 and n_tops = 1 and n_accessories = 1 and n_bottoms = 1
)

select * from final order by variant, split, set_id
