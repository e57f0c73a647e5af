"""Jobs: a site job end to end (embed → probe → track → transfer), its dry-run plan, and the transfer step alone.

Names load on first use (PEP 562): a command that only checks a spec must not import torch.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "describe_plan": "plan",
    "JobReport": "site_job",
    "ProtocolOutcome": "site_job",
    "run_job": "site_job",
    "run_transfer": "transfer_job",
    "TransferOutcome": "transfer_step",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
