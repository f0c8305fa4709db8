"""spark-submit entry point of the public stage: `spark-submit jobs/public.py --env local`."""

import sys

from lakehouse.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(["public"]))
