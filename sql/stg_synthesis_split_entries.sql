-- every entry of train_ind / test_ind (Eval/ind.mat) with its checks: an index must be a whole
-- number in 1-N (N = records of language_original.mat); a repeat inside one list keeps its first
-- entry; an index in both lists is unusable in both (a record cannot be in two splits)
with source as (
    select * from raw_synthesis_split_entries
),

release as (
    select * from raw_synthesis_release
),

checked as (
    select
        source.*,
        case
            when coalesce(source.index_raw <> floor(source.index_raw)
                          or source.index_raw not between 1 and release.n_records, true)
                then 'index ' || source.raw || ' is out of range: record indices are 1-' || release.n_records
        end as invalid_reason
    from source
    cross join release
),

indexed as (
    select
        checked.*,
        case when invalid_reason is null then cast(index_raw as integer) end as record_index
    from checked
),

per_index as (
    select record_index, count(distinct split) as n_splits
    from indexed
    where invalid_reason is null
    group by record_index
),

ranked as (
    select
        indexed.*,
        row_number() over (partition by indexed.split, indexed.record_index order by indexed.position) as occurrence,
        min(indexed.position) over (partition by indexed.split, indexed.record_index) as first_position,
        coalesce(per_index.n_splits = 2, false) as in_both
    from indexed
    left join per_index using (record_index)
)

select
    *,
    case
        when invalid_reason is not null then invalid_reason
        when in_both then 'index ' || record_index || ' is in both train_ind and test_ind'
        when occurrence > 1 then 'index ' || record_index || ' repeats ' || variable || '(' || first_position || ')'
    end as reason,
    variable || '(' || position || ')' as record_key,
    invalid_reason is null and not in_both and occurrence = 1 as kept
from ranked
