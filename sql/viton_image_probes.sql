-- what was probed of each image file (size and mtime decide whether a re-run probes it again)
with source as (
    select * from raw_viton_image_probes
)

select * from source order by image_path
