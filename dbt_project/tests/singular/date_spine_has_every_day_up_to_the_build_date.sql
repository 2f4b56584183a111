-- Date-spine integrity of int_dates__spine (unique and not_null are its column tests): no day is
-- missing between its first and last day, and the last day is the build date (as_of_date, the date
-- the models are built as of). Fails with one row describing the spine otherwise; an empty spine fails
-- too (it always holds the build date). A run of this test alone on a later UTC day than the spine's
-- build fails as it should: the spine, and the KPI mart on it, are a day short until rebuilt (each
-- dbt command funnelhouse starts is as of the day it, or the build it belongs to, started:
-- build_date.pinned_build_date; a build crossing midnight UTC tests the spine as of the day it built it).
select
    count() as spine_days,
    min(date_day) as first_day,
    max(date_day) as last_day,
    {{ as_of_date() }} as build_date
from {{ ref('int_dates__spine') }}
having count() != dateDiff('day', min(date_day), max(date_day)) + 1
    or count() = 0
    or max(date_day) != {{ as_of_date() }}
