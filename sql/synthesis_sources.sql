-- per source file: records read = records kept + records quarantined
with read as (
    select source_file, records_read from raw_synthesis_files
),

kept as (
    select 'Anno/language_original.mat' as source_file, count(*) as n from synthesis_captions
    union all select 'Eval/ind.mat', count(*) from synthesis_splits
    union all select 'Img/G2.h5', count(*) from synthesis_images
),

quarantined as (
    select source_file, count(*) as n from synthesis_quarantine group by source_file
),

final as (
    select
        'synthesis' as dataset,
        read.source_file,
        read.records_read,
        coalesce(kept.n, 0) as records_kept,
        coalesce(quarantined.n, 0) as records_quarantined
    from read
    left join kept using (source_file)
    left join quarantined using (source_file)
)

select * from final order by source_file
