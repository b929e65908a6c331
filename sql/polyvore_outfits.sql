-- one row per outfit with at least one kept item
with source as (
    select * from polyvore_outfit_items
),

titles as (
    select set_id, any_value(title) as title from raw_polyvore_outfit_titles group by set_id
),

grouped as (
    select variant, split, set_id, count(*)::int as n_items
    from source
    group by variant, split, set_id
),

final as (
    select grouped.variant, grouped.split, grouped.set_id, grouped.n_items, titles.title
    from grouped
    left join titles on titles.set_id = grouped.set_id
)

select * from final order by variant, split, set_id
