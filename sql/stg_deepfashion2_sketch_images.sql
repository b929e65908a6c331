-- each distinct Simplicity image a pattern names (line drawing or photo) that exists, with its probe
with paths as (
    select distinct path from (
        select line_image as path from raw_deepfashion2_patterns
        union all
        select unnest(other_images) as path from raw_deepfashion2_patterns
    )
),

probes as (
    select * from raw_deepfashion2_image_probes
)

select probes.*
from paths
join probes on probes.image_path = paths.path
