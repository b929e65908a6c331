-- fill-in-the-blank questions with tokens resolved and the right answer located: the one
-- candidate that shares the question's set_id
with source as (
    select * from raw_polyvore_fitb
),

tokens as (
    select variant, split, question_id, 'question' as part,
        unnest(question) as token, generate_subscripts(question, 1) as position
    from source
    union all
    select variant, split, question_id, 'answers' as part,
        unnest(answers) as token, generate_subscripts(answers, 1) as position
    from source
),

resolved as (
    select
        tokens.*,
        regexp_extract(tokens.token, '^(.*)_[0-9]+$', 1) as set_id,
        outfit_items.item_id
    from tokens
    left join stg_polyvore_outfit_items as outfit_items
        on outfit_items.variant = tokens.variant
        and outfit_items.split = tokens.split
        and outfit_items.token = tokens.token
        and outfit_items.item_known
),

per_question as (
    select
        variant,
        split,
        question_id,
        list(item_id order by position) filter (where part = 'question') as question_item_ids,
        list(item_id order by position) filter (where part = 'answers') as candidate_item_ids,
        count(distinct set_id) filter (where part = 'question') as n_question_sets,
        min(set_id) filter (where part = 'question') as question_set_id,
        count(*) filter (where item_id is null) as n_unknown,
        string_agg(token, ' ' order by part desc, position) filter (where item_id is null) as unknown_tokens
    from resolved
    group by variant, split, question_id
),

answers as (
    select
        resolved.variant,
        resolved.split,
        resolved.question_id,
        count(*) as n_correct,
        (min(resolved.position) - 1)::int as answer_position
    from resolved
    join per_question using (variant, split, question_id)
    where resolved.part = 'answers' and resolved.set_id = per_question.question_set_id
    group by resolved.variant, resolved.split, resolved.question_id
)

select
    source.variant,
    source.split,
    source.question_id,
    per_question.question_set_id,
    per_question.question_item_ids,
    per_question.candidate_item_ids,
    answers.answer_position,
    source.blank_position,
    per_question.n_question_sets,
    per_question.n_unknown,
    per_question.unknown_tokens,
    coalesce(answers.n_correct, 0) as n_correct,
    source.raw,
    source.source_file
from source
join per_question using (variant, split, question_id)
left join answers using (variant, split, question_id)
