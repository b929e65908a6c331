-- FITB questions: items of an outfit with one left out, four candidates, the answer's position
-- among them (0-based) and the blank's position in the outfit as released
with source as (
    select * from stg_polyvore_fitb
    where n_unknown = 0 and n_question_sets = 1 and n_correct = 1
),

final as (
    select
        variant,
        split,
        question_id,
        question_set_id as set_id,
        question_item_ids,
        candidate_item_ids,
        answer_position,
        blank_position
    from source
)

select * from final order by variant, split, question_id
