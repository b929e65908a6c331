-- compatibility lines with their `<set_id>_<index>` tokens resolved to item ids of the same split
with source as (
    select * from raw_polyvore_compatibility
),

tokens as (
    select
        variant,
        split,
        question_id,
        unnest(tokens) as token,
        generate_subscripts(tokens, 1) as position
    from source
),

resolved as (
    select tokens.*, outfit_items.item_id
    from tokens
    left join stg_polyvore_outfit_items as outfit_items
        on outfit_items.variant = tokens.variant
        and outfit_items.split = tokens.split
        and outfit_items.token = tokens.token
        and outfit_items.item_known
),

per_line as (
    select
        variant,
        split,
        question_id,
        list(item_id order by position) as item_ids,
        count(*) filter (where item_id is null) as n_unknown,
        string_agg(token, ' ' order by position) filter (where item_id is null) as unknown_tokens
    from resolved
    group by variant, split, question_id
)

select
    source.variant,
    source.split,
    source.question_id,
    source.label,
    per_line.item_ids,
    per_line.n_unknown,
    per_line.unknown_tokens,
    source.raw,
    source.source_file
from source
join per_line using (variant, split, question_id)
