-- every VITON-HD record that could not be used, with the reason and the record as read:
-- malformed pair lines, repeated pair lines, files that do not decode, parse maps not in palette mode
with shape_errors as (
    select dataset, source_file, record_key, reason, raw from raw_viton_quarantine
),

duplicates as (
    select
        'viton' as dataset,
        source_file,
        'line ' || line_no as record_key,
        'duplicate pair ' || person || ' ' || cloth || ': line ' || first_line_no || ' kept' as reason,
        raw
    from stg_viton_pairs
    where not kept
),

unusable_files as (
    select
        'viton' as dataset,
        split || '/' || folder as source_file,
        file_name as record_key,
        unusable_reason || ' (' || image_path || ')' as reason,
        image_path as raw
    from stg_viton_files
    where present and not usable
),

final as (
    select * from shape_errors
    union all select * from duplicates
    union all select * from unusable_files
)

select * from final order by source_file, record_key
