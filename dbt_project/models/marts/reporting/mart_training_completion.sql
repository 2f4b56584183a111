-- Training per employee over the courses assigned to them. A training_progress row is a course's
-- assignment to the employee (the CRM writes it as 'not_started' and moves its status on; one per
-- employee and course), so the rates divide by the employee's progress rows of a known course, not by
-- the whole catalogue, which no employee is assigned all of (tracks go by level). course_count and
-- required_course_count still give the catalogue.
with employees as (
    select * from {{ ref('dim_employees') }}
),

courses as (
    select * from {{ ref('stg_crm__training_courses') }}
),

progress as (
    select * from {{ ref('stg_crm__training_progress') }}
),

course_counts as (
    select toUInt64(count()) as course_count, toUInt64(countIf(is_required)) as required_course_count
    from courses
),

employee_progress as (
    select
        progress.employee_id as employee_id,
        count() as courses_assigned,
        countIf(courses.is_required) as required_courses_assigned,
        countIf(progress.training_status = 'completed') as courses_completed,
        countIf(progress.training_status = 'in_progress') as courses_in_progress,
        countIf(progress.training_status = 'failed') as courses_failed,
        countIf(progress.training_status = 'not_started') as courses_not_started,
        countIf(progress.training_status = 'completed' and courses.is_required) as required_courses_completed,
        avgIf(toFloat64(progress.score), progress.score is not null) as average_score,
        -- (the CRM stamps completed_at on a failed attempt too: that is no completion)
        maxIf(progress.completed_at, progress.training_status = 'completed') as last_completed_at
    from progress
    inner join courses on progress.course_id = courses.course_id
    group by progress.employee_id
),

final as (
    select
        employees.employee_id as employee_id,
        employees.employee_code as employee_code,
        employees.employee_name as employee_name,
        employees.department as department,
        course_counts.course_count as course_count,
        course_counts.required_course_count as required_course_count,
        toUInt64(ifNull(employee_progress.courses_assigned, 0)) as courses_assigned,
        toUInt64(ifNull(employee_progress.required_courses_assigned, 0)) as required_courses_assigned,
        toUInt64(ifNull(employee_progress.courses_completed, 0)) as courses_completed,
        toUInt64(ifNull(employee_progress.courses_in_progress, 0)) as courses_in_progress,
        toUInt64(ifNull(employee_progress.courses_failed, 0)) as courses_failed,
        toUInt64(ifNull(employee_progress.courses_not_started, 0)) as courses_not_started,
        toUInt64(ifNull(employee_progress.required_courses_completed, 0)) as required_courses_completed,
        -- (nothing assigned, no rate: NULL, not 0 % of nothing)
        {{ safe_ratio('employee_progress.courses_completed', 'employee_progress.courses_assigned') }}
            as completion_rate,
        {{ safe_ratio('employee_progress.required_courses_completed', 'employee_progress.required_courses_assigned') }}
            as required_completion_rate,
        employee_progress.average_score as average_score,
        employee_progress.last_completed_at as last_completed_at
    from employees
    cross join course_counts
    left join employee_progress on employees.employee_id = employee_progress.employee_id
)

select * from final
