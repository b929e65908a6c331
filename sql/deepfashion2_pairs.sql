-- positive groups for consumer-to-shop retrieval: one row per (split, pair_id, style > 0) with
-- at least one shop and one user item; all items of a group show the same garment
with source as (
    select * from deepfashion2_items where style > 0
),

grouped as (
    select
        split,
        pair_id,
        style,
        case when min(category_id) = max(category_id) then min(category_id) end as category_id,
        (count(*) filter (where source = 'shop'))::int as n_shop,
        (count(*) filter (where source = 'user'))::int as n_user,
        coalesce(list(item_id order by item_id) filter (where source = 'shop'), []) as shop_item_ids,
        coalesce(list(item_id order by item_id) filter (where source = 'user'), []) as user_item_ids
    from source
    group by split, pair_id, style
),

final as (
    select * from grouped where n_shop > 0 and n_user > 0
)

select * from final order by split, pair_id, style
