"""Secrets stay secret: the HMAC key and S3 credentials are not on the Spark UI's environment page.

The key reaches Spark only inside the tokenizing functions' closures (see silver.standardize.HmacTokenizer), and
credentials only through the AWS chain; settings whose names look secret are redacted as a second line. The
scans of tables and run output for the key are in test_e2e and test_s3.
"""

from __future__ import annotations

import json
import urllib.request

from pyspark.sql import SparkSession

from lakehouse.session import REDACTION_REGEX
from tests.conftest import TEST_HMAC_KEY


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode("utf-8"))


def test_spark_ui_environment_page_shows_no_secret(spark: SparkSession) -> None:
    context = spark.sparkContext
    ui = context.uiWebUrl
    assert ui, "the Spark UI is on in tests, as it is in every run"
    api = json.loads(fetch(f"{ui}/api/v1/applications/{context.applicationId}/environment"))
    page = fetch(f"{ui}/environment/")
    assert spark.conf.get("spark.redaction.regex") == REDACTION_REGEX
    properties = dict(api["sparkProperties"])
    # Spark redacts a setting whose name or value matches the pattern: the pattern's own value does ("secret")
    assert properties["spark.redaction.regex"] == "*********(redacted)"
    assert len(api["systemProperties"]) > 10 and len(properties) > 10  # the page has content
    for text in (json.dumps(api), page):
        assert TEST_HMAC_KEY not in text
