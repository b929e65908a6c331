-- caption records of language_original.mat with their checks and split: a record needs a
-- caption and a name, codes in range (cate_new 1-19, color_ 1-17, gender_ 0/1, sleeve_ 1-4,
-- whole numbers) and at most one split (train/test from ind.mat, 'unassigned' when in neither)
with source as (
    select * from raw_synthesis_records
),

assigned as (
    select record_index, count(distinct split) as n_splits, min(split) as split
    from stg_synthesis_split_entries
    where invalid_reason is null
    group by record_index
),

checked as (
    select
        source.*,
        case when assigned.n_splits is null then 'unassigned' when assigned.n_splits = 1 then assigned.split end as split,
        nullif(concat_ws('; ',
            case when trim(source.caption) = '' then 'empty caption (engJ)' end,
            case when trim(source.name) = '' then 'empty image name (nameList)' end,
            case when coalesce(source.cate_new_raw <> floor(source.cate_new_raw) or source.cate_new_raw not between 1 and 19, true)
                then 'cate_new ' || printf('%g', source.cate_new_raw) || ' is not a code 1-19' end,
            case when coalesce(source.color_raw <> floor(source.color_raw) or source.color_raw not between 1 and 17, true)
                then 'color_ ' || printf('%g', source.color_raw) || ' is not a code 1-17' end,
            case when coalesce(source.gender_raw not in (0, 1), true)
                then 'gender_ ' || printf('%g', source.gender_raw) || ' is not 0 or 1' end,
            case when coalesce(source.sleeve_raw <> floor(source.sleeve_raw) or source.sleeve_raw not between 1 and 4, true)
                then 'sleeve_ ' || printf('%g', source.sleeve_raw) || ' is not a code 1-4' end,
            case when assigned.n_splits > 1 then 'index ' || source.index || ' is in both train_ind and test_ind of Eval/ind.mat' end
        ), '') as invalid_reason
    from source
    left join assigned on assigned.record_index = source.index
)

select
    *,
    invalid_reason is null as kept
from checked
