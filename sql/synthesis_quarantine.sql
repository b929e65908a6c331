-- every Fashion Synthesis record that could not be used, with the reason and the record as read
with shape_errors as (
    select dataset, source_file, record_key, reason, raw from raw_synthesis_quarantine
),

bad_captions as (
    select
        'synthesis' as dataset,
        'Anno/language_original.mat' as source_file,
        cast(index as varchar) as record_key,
        invalid_reason as reason,
        raw
    from stg_synthesis_captions
    where not kept
),

bad_split_entries as (
    select
        'synthesis' as dataset,
        'Eval/ind.mat' as source_file,
        record_key,
        reason,
        raw
    from stg_synthesis_split_entries
    where not kept
),

final as (
    select * from shape_errors
    union all select * from bad_captions
    union all select * from bad_split_entries
)

select * from final order by source_file, record_key
