-- The dashboard query set of `make bench-bi` (bench/bi/run_bench.py). Each block starts with `-- name:`;
-- {gold} and {public} are the databases, {cohort}, {county} and {wage_year} come from the data.

-- name: pathways by group, one county and cohort (public)
SELECT group_value, n_graduates, enrollment_rate, ever_enrollment_rate, completion_rate, earnings_median_yr1,
       suppression_reason
FROM {public}.student_pathways
WHERE cohort_year = {cohort} AND geography_level = 'county' AND county_code = '{county}'
  AND group_dimension = 'race_ethnicity'
ORDER BY group_value;

-- name: statewide trend over cohorts (public)
SELECT cohort_year, n_graduates, enrollment_rate, ever_enrollment_rate, completion_rate, earnings_median_yr1,
       earnings_median_yr5, share_employed_yr1
FROM {public}.student_pathways
WHERE geography_level = 'state' AND group_dimension = 'all'
ORDER BY cohort_year;

-- name: drill-down to the districts of a county (gold mart and dim_geography)
SELECT g.geography_name, m.n_graduates, m.enrollment_rate, m.n_enrolled_ccc, m.n_enrolled_csu, m.n_enrolled_uc,
       m.completion_rate
FROM {gold}.mart_student_pathways m
JOIN {gold}.dim_geography g ON g.geography_level = 'district' AND g.district_code = m.district_code
WHERE m.cohort_year = {cohort} AND m.geography_level = 'district' AND m.county_code = '{county}'
  AND m.group_dimension = 'all'
ORDER BY m.n_graduates DESC;

-- name: top 10 counties by college-going rate (public and dim_geography)
SELECT g.county_name, p.n_graduates, p.enrollment_rate
FROM {public}.student_pathways p
JOIN {gold}.dim_geography g ON g.geography_level = 'county' AND g.county_code = p.county_code
WHERE p.cohort_year = {cohort} AND p.geography_level = 'county' AND p.group_dimension = 'all'
  AND p.enrollment_rate IS NOT NULL
ORDER BY p.enrollment_rate DESC, g.county_name
LIMIT 10;

-- name: earnings by student group, statewide (public)
SELECT group_dimension, group_value, n_employed_yr1, earnings_p25_yr1, earnings_median_yr1, earnings_p75_yr1,
       n_employed_yr3, earnings_median_yr3
FROM {public}.student_pathways
WHERE cohort_year = {cohort} AND geography_level = 'state'
ORDER BY group_dimension, group_value;

-- name: drill-down to the high schools of a county (gold facts and dim_institution)
SELECT i.institution_name, count(*) AS completions, sum(CAST(g.is_a_g_complete AS INT)) AS a_g_complete
FROM {gold}.fact_k12_graduation g
JOIN {gold}.dim_institution i ON i.sector = 'K12' AND i.institution_code = g.school_code
WHERE g.school_year = {cohort} AND g.county_code = '{county}'
GROUP BY i.institution_name
ORDER BY completions DESC, i.institution_name
LIMIT 20;

-- name: college headcount by segment over five years (gold fact)
SELECT academic_year, segment, count(DISTINCT person_id) AS students
FROM {gold}.fact_postsecondary_enrollment
WHERE academic_year BETWEEN {cohort} - 4 AND {cohort}
GROUP BY academic_year, segment
ORDER BY academic_year, segment;

-- name: top 10 industries by wages in a year (gold fact)
SELECT substr(naics, 1, 2) AS sector, count(DISTINCT person_id) AS workers, sum(wages) AS wages
FROM {gold}.fact_quarterly_wages
WHERE year = {wage_year}
GROUP BY substr(naics, 1, 2)
ORDER BY wages DESC
LIMIT 10;
