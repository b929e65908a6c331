-- the G2.h5 files the captioned Fashion Synthesis images are read from (the embed job stats them:
-- size and mtime are part of each image's image_sha1, see embed_synthesis.sql)
with images as (
    select * from synthesis_images where captioned
)

select distinct h5_path from images order by h5_path
