"""Jobs: a site job end to end (embed → probe → track → transfer), its dry-run plan, and the transfer step alone."""

from medprobe.jobs.plan import describe_plan
from medprobe.jobs.site_job import JobReport, ProtocolOutcome, run_job
from medprobe.jobs.transfer_job import run_transfer
from medprobe.jobs.transfer_step import TransferOutcome

__all__ = ["JobReport", "ProtocolOutcome", "TransferOutcome", "describe_plan", "run_job", "run_transfer"]
