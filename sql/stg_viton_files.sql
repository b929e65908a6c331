-- every file a kept pair line refers to: whether it exists and, from its image probe (no file is
-- opened again here), whether it is usable: it decodes, and a parse map is a palette ('P') image
with source as (
    select * from raw_viton_expected_files
),

probes as (
    select * from raw_viton_image_probes
),

joined as (
    select
        source.split,
        source.folder,
        source.stem,
        source.file_name,
        source.image_path,
        source.present,
        probes.image_path is not null as probed,
        probes.image_ok,
        probes.mode,
        probes.width,
        probes.height,
        probes.error
    from source
    left join probes on probes.image_path = source.image_path
),

checked as (
    select
        joined.*,
        case
            when not present then null
            when folder = 'openpose_json' then null  -- counted by presence only
            when not probed then 'listed, but gone when it was probed'
            when not image_ok then error
            when folder in ('image-parse-v3', 'image-parse-agnostic-v3.2') and mode <> 'P'
                then 'parse map is mode ' || mode || ', not palette (P): its label indices are lost'
        end as unusable_reason
    from joined
)

select *, present and unusable_reason is null as usable from checked
