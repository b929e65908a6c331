-- the generated images (flows.jobs.generated): the previous version's rows plus this generation's,
-- one row per item_id (<model version>/<hash>_<i>): an image generated again (same prompt, seed,
-- steps, guidance and model: the same file) keeps the newest row, never a second one
with previous as (
    select * from raw_generated_previous
),

new as (
    select * from raw_generated_images
),

rows as (
    select *, 0 as age from new
    union all by name
    select *, 1 as age from previous
),

final as (
    select * exclude (age, rank)
    from (
        select *, row_number() over (partition by item_id order by age, created_at desc) as rank
        from rows
    )
    where rank = 1
)

select * from final order by item_id
