-- per split and folder: files the kept pair lines refer to (expected), how many exist, are
-- missing, or exist but are unusable (quarantined), and how many files the folder holds in all
with files as (
    select * from stg_viton_files
),

listing as (
    select * from raw_viton_folder_listing
),

counted as (
    select
        split,
        folder,
        count(*) as files_expected,
        count(*) filter (where present) as files_present,
        count(*) filter (where not present) as files_missing,
        count(*) filter (where present and not usable) as files_unusable
    from files
    group by split, folder
),

final as (
    select
        listing.split,
        listing.folder,
        coalesce(counted.files_expected, 0) as files_expected,
        coalesce(counted.files_present, 0) as files_present,
        coalesce(counted.files_missing, 0) as files_missing,
        coalesce(counted.files_unusable, 0) as files_unusable,
        listing.files_in_folder
    from listing
    left join counted using (split, folder)
)

select * from final order by split, folder
