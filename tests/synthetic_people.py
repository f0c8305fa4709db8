"""Synthetic people with known duplicates, as an outside file would hold them: common names and birth years
collide, a third of the people appear more than once with a typo, a nickname or a missing SSN."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

FIRST = ["MARIA", "JOSE", "JUAN", "ANA", "LUIS", "SOFIA", "DAVID", "EMMA", "DANIEL", "OLIVIA", "JAMES", "MIA"]
FIRST += ["WILLIAM", "ISABELLA", "CARLOS", "CAMILA", "MICHAEL", "ELENA", "ROBERT", "LUCIA", "ANTHONY", "VALERIA"]
LAST = ["GARCIA", "HERNANDEZ", "LOPEZ", "MARTINEZ", "SMITH", "NGUYEN", "KIM", "JOHNSON", "RODRIGUEZ", "LEE"]
LAST += ["WONG", "PATEL", "BROWN", "GONZALEZ", "PEREZ", "DAVIS", "CHEN", "TRAN", "MILLER", "WILSON"]
NICK = {"WILLIAM": "BILL", "ROBERT": "BOB", "MICHAEL": "MIKE", "ANTHONY": "TONY", "JOSE": "PEPE", "DANIEL": "DAN"}
MAPPING = """\
record_id: rec_id
first_name: given_name
last_name: surname
dob: {column: birth, format: yyyyMMdd}
ssn: social
zip: postcode
sex: gender
email: email
"""


def typo(value: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(value))
    return value[:i] + rng.choice("AEIOURSTN") + value[i + 1 :]


def people(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    people = []
    for k in range(n):
        born = date(1985, 1, 1) + timedelta(days=rng.randrange(0, 20 * 365))
        ssn = f"{rng.randrange(100, 600):03d}{rng.randrange(10, 99):02d}{rng.randrange(1000, 9999):04d}"
        people.append(
            {
                "person": f"T{k}",
                "first": rng.choice(FIRST),
                "last": rng.choice(LAST),
                "birth": born.strftime("%Y%m%d"),
                "ssn": ssn if rng.random() < 0.6 else "",
                "zip": f"9{rng.randrange(0, 6000):04d}",
                "sex": rng.choice("MF"),
            }
        )
    return people


def record(person: dict[str, str], rec_id: str, rng: random.Random, *, noisy: bool) -> dict[str, str]:
    first, last, birth, ssn = person["first"], person["last"], person["birth"], person["ssn"]
    if noisy:
        change = rng.randrange(5)
        if change == 0:
            first = typo(first, rng)
        elif change == 1:
            first = NICK.get(first, first.title())
        elif change == 2:
            last = typo(last, rng)
        elif change == 3:
            ssn = ""
    return {
        "rec_id": rec_id,
        "given_name": first,
        "surname": last.title(),
        "birth": birth,
        "social": ssn,
        "postcode": person["zip"],
        "gender": person["sex"],
        "email": "",
        "true_person": person["person"],
    }


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
