-- probes of image files: none for Fashion Synthesis (its images live inside Img/G2.h5), kept for
-- uniformity with the other datasets
with source as (
    select * from raw_synthesis_image_probes
)

select * from source order by image_path
