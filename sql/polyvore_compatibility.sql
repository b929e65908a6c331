-- compatibility questions (label 1: a real outfit, 0: a negative) whose items all resolve
with source as (
    select * from stg_polyvore_compatibility where n_unknown = 0
),

final as (
    select variant, split, question_id, label, item_ids
    from source
)

select * from final order by variant, split, question_id
