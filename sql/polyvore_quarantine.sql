-- every Polyvore record that could not be used, with the reason and the record as read
with shape_errors as (
    select dataset, source_file, record_key, reason, raw from raw_polyvore_quarantine
),

unknown_items as (
    select
        'polyvore' as dataset,
        source_file,
        token as record_key,
        'item ' || item_id || ' is not in polyvore_item_metadata.json' as reason,
        to_json({set_id: set_id, item_id: item_id, index: index})::varchar as raw
    from stg_polyvore_outfit_items
    where not item_known
),

bad_images as (
    select
        'polyvore' as dataset,
        'images' as source_file,
        item_id || '.jpg' as record_key,
        image_error || ' (' || image_path || ')' as reason,
        image_path as raw
    from stg_polyvore_items
    where image_found and not image_ok
),

bad_compatibility as (
    select
        'polyvore' as dataset,
        source_file,
        'line ' || question_id as record_key,
        'names an unknown outfit item: ' || unknown_tokens as reason,
        raw
    from stg_polyvore_compatibility
    where n_unknown > 0
),

bad_fitb as (
    select
        'polyvore' as dataset,
        source_file,
        'question ' || question_id as record_key,
        case
            when n_unknown > 0 then 'names an unknown outfit item: ' || unknown_tokens
            when n_question_sets <> 1 then 'question items come from ' || n_question_sets || ' outfits'
            when n_correct = 0 then 'no answer comes from the question''s outfit ' || question_set_id
            else n_correct || ' answers come from the question''s outfit ' || question_set_id
        end as reason,
        raw
    from stg_polyvore_fitb
    where not (n_unknown = 0 and n_question_sets = 1 and n_correct = 1)
),

final as (
    select * from shape_errors
    union all select * from unknown_items
    union all select * from bad_images
    union all select * from bad_compatibility
    union all select * from bad_fitb
)

select * from final order by source_file, record_key
