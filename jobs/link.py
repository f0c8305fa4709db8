"""spark-submit entry point of the link stage: `spark-submit jobs/link.py --env local`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(["link"]))
