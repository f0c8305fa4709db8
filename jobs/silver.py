"""spark-submit entry point of the silver stage: `spark-submit jobs/silver.py --env local`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(["silver"]))
