"""One module per step kind; STEP_KINDS maps each kind to its class."""

from .archive import Archive
from .base import Outcome, Step
from .call import Call
from .merge import Merge
from .network import Network
from .pull import Pull
from .run import Run
from .teardown import Teardown
from .volume import Volume

STEP_KINDS: dict[str, type[Step]] = {
    step.kind: step
    for step in (Network, Pull, Volume, Run, Call, Merge, Archive, Teardown)
}

__all__ = ["STEP_KINDS", "Outcome", "Step"]
