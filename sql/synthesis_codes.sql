-- codeJ of each usable caption record: the caption's words as 1-based vocabulary indices
with source as (
    select * from stg_synthesis_captions where kept
),

final as (
    select
        source.index,
        source.word_codes,
        len(source.word_codes) as n_words
    from source
)

select * from final order by index
