-- research attributes.csv rows with codes parsed and checked: '#N/A' is missing (its own class,
-- index = number of real classes); other non-codes and out-of-range codes make the row
-- unusable; of rows sharing a filename the first usable one is kept
with source as (
    select * from raw_deepfashion_attributes
),

classes as (
    select * from raw_deepfashion_classes
),

parsed as (
    select
        source.*,
        source.neck_raw = '#N/A' as neck_missing,
        source.sleeve_length_raw = '#N/A' as sleeve_length_missing,
        source.pattern_raw = '#N/A' as pattern_missing,
        try_cast(source.neck_raw as integer) as neck_code,
        try_cast(source.sleeve_length_raw as integer) as sleeve_length_code,
        try_cast(source.pattern_raw as integer) as pattern_code,
        classes.neck as neck_classes,
        classes.sleeve_length as sleeve_length_classes,
        classes.pattern as pattern_classes
    from source
    cross join classes
),

checked as (
    select
        parsed.*,
        nullif(concat_ws('; ',
            case when not neck_missing and coalesce(neck_code not between 0 and neck_classes - 1, true)
                then 'neck ' || '''' || neck_raw || '''' || ' is not #N/A or a code 0-' || (neck_classes - 1) end,
            case when not sleeve_length_missing and coalesce(sleeve_length_code not between 0 and sleeve_length_classes - 1, true)
                then 'sleeve_length ' || '''' || sleeve_length_raw || '''' || ' is not #N/A or a code 0-' || (sleeve_length_classes - 1) end,
            case when not pattern_missing and coalesce(pattern_code not between 0 and pattern_classes - 1, true)
                then 'pattern ' || '''' || pattern_raw || '''' || ' is not #N/A or a code 0-' || (pattern_classes - 1) end
        ), '') as invalid_reason
    from parsed
),

ranked as (
    select
        checked.*,
        row_number() over (partition by filename order by invalid_reason is not null, line_no) as occurrence
    from checked
),

with_first as (
    select
        ranked.*,
        first.line_no as first_line_no,
        (ranked.neck_raw, ranked.sleeve_length_raw, ranked.pattern_raw)
            = (first.neck_raw, first.sleeve_length_raw, first.pattern_raw) as same_as_first
    from ranked
    left join ranked as first
        on first.filename = ranked.filename and first.occurrence = 1 and first.invalid_reason is null
)

select
    *,
    case when neck_missing then neck_classes else neck_code end as neck,
    case when sleeve_length_missing then sleeve_length_classes else sleeve_length_code end as sleeve_length,
    case when pattern_missing then pattern_classes else pattern_code end as pattern,
    invalid_reason is null and occurrence = 1 as kept
from with_first
