"""CTC feed: teaching credentials of a few percent of bachelor's graduates (half of liberal-studies majors).

A new teacher gets a preliminary credential one to two years after the degree (or an intern credential
while still in a program), sometimes an emergency permit first, and most clear the credential within five
years. Expiration: preliminary and clear five years, intern two, emergency one.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext
from lakehouse.synth.identity import IdentityProfile
from lakehouse.synth.keys import row_code

CTC = IdentityProfile(
    partner="ctc",
    nickname_rate=0.02,
    middle_rate=0.7,
    middle_initial_rate=0.4,
    ssn_rate=0.99,
    dob_missing_rate=0.003,
    married_name_lag=0.05,
)

TEACHING_MAJORS = ("13.1202", "19.0706")
SUBJECT_BY_CIP = {
    "13.1202": "MULTIPLE SUBJECT",
    "19.0706": "MULTIPLE SUBJECT",
    "27.0101": "SINGLE SUBJECT: MATHEMATICS",
    "26.0101": "SINGLE SUBJECT: SCIENCE: BIOLOGICAL SCIENCES",
    "40.0501": "SINGLE SUBJECT: SCIENCE: CHEMISTRY",
    "23.0101": "SINGLE SUBJECT: ENGLISH",
    "54.0101": "SINGLE SUBJECT: SOCIAL SCIENCE",
    "45.1001": "SINGLE SUBJECT: SOCIAL SCIENCE",
    "31.0505": "SINGLE SUBJECT: PHYSICAL EDUCATION",
    "50.0701": "SINGLE SUBJECT: ART",
    "16.0905": "SINGLE SUBJECT: WORLD LANGUAGES: SPANISH",
}
OTHER_SUBJECTS = ["EDUCATION SPECIALIST: MILD/MODERATE SUPPORT NEEDS", "MULTIPLE SUBJECT"]


def _document(kind: str, issue: Column, years_valid: int, code: int) -> Column:
    return F.struct(
        F.lit(kind).alias("credential_type"),
        issue.alias("issue_date"),
        F.add_months(issue, 12 * years_valid).alias("expiration_date"),
        F.lit(code).alias("code"),
    )


def credentials(ctx: FeedContext) -> DataFrame:
    """One row per credential document issued."""
    draws, pid = ctx.draws, F.col("person_id")
    cip = ctx.ref.programs.at("cip", F.col("program_row"))
    teacher_rate = F.when(cip.isin(*TEACHING_MAJORS), 0.5).otherwise(0.04)
    teachers = ctx.people.where(F.col("ba_year").isNotNull() & draws.chance(teacher_rate, "teacher", pid))
    degree = F.col("ug_end_date")
    is_intern = draws.chance(0.15, "intern", pid)
    first_issue = F.when(is_intern, F.date_add(degree, draws.integer(60, 400, "intern_issue", pid))).otherwise(
        F.date_add(degree, draws.integer(200, 800, "preliminary_issue", pid))
    )
    documents = F.array(
        F.when(
            draws.chance(0.05, "emergency", pid),
            _document("EMERGENCY", F.date_add(degree, draws.integer(30, 200, "emergency_issue", pid)), 1, 0),
        ),
        F.when(is_intern, _document("INTERN", first_issue, 2, 1)).otherwise(
            _document("PRELIMINARY", first_issue, 5, 1)
        ),
        F.when(
            draws.chance(0.7, "clears", pid),
            _document("CLEAR", F.date_add(first_issue, draws.integer(730, 1825, "clear_issue", pid)), 5, 2),
        ),
    )
    rows = (
        teachers.withColumn("_doc", F.explode(F.filter(documents, lambda d: d.isNotNull())))
        .where(F.col("_doc.issue_date") <= ctx.window_end())
        .withColumns(
            {
                "_event_year": F.year("_doc.issue_date"),
                "_row_code": row_code(pid, F.col("_doc.code")),
            }
        )
    )
    subject: Column = draws.pick(OTHER_SUBJECTS, "subject_area", pid)
    for code, name in SUBJECT_BY_CIP.items():
        subject = F.when(cip == code, F.lit(name)).otherwise(subject)
    return ctx.finish(
        rows,
        CTC,
        {
            "credential_type": F.col("_doc.credential_type"),
            "subject_area": subject,
            "issue_date": F.col("_doc.issue_date"),
            "expiration_date": F.col("_doc.expiration_date"),
        },
    )
