-- the official split lists (Eval/ind.mat) as released: each usable entry of train_ind / test_ind
with source as (
    select * from stg_synthesis_split_entries where kept
),

final as (
    select
        source.split,
        source.position,
        source.record_index as index
    from source
)

select * from final order by split, position
