"""What a future-dated command held on a device reports when it runs (CR1233): the draw.

A command whose SRV's future-dated pattern is "Device" (the device holds it) and that the
device acknowledged (``I99``) later sends one Response per instruction: a DUIS
``ResponseMessage`` with the request's SRV carrying a ``FutureDatedDeviceAlertMessage``
(:class:`~dccsim.core.messages.FutureDatedAlert`; 0x8F66 done, 0x8F67 not done, with
InstructionNumber and TotalCommandInstructions). :func:`future_dated_responses` draws them as
columns from a seeded generator; the virtual-time driver
(:mod:`dccsim.loadgen.driver`) logs them in ``audit.arrow``, the wall-clock server
(:mod:`dccsim.core.server`) also sends them to the connection that sent the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ALERT_FD_DONE", "ALERT_FD_NOT_DONE", "FutureDatedResponses", "future_dated_responses"]

_NS = 1_000_000_000
#: FutureDatedAlertCode of a future-dated response: the instruction was done / not done
ALERT_FD_DONE = 0x8F66
ALERT_FD_NOT_DONE = 0x8F67


@dataclass
class FutureDatedResponses:
    """The Responses future-dated commands send when they run: one per instruction (columns).

    ``command`` indexes the commands given to :func:`future_dated_responses`; the rows are in
    command order, then instruction order (not arrival order: the driver sorts by time).
    """

    command: npt.NDArray[np.int64]
    t_ns: npt.NDArray[np.int64]
    alert_code: npt.NDArray[np.uint16]
    instruction: npt.NDArray[np.uint16]
    total_instructions: npt.NDArray[np.uint16]
    #: responses of the command received up to and including this one (its rank in arrival order + 1)
    received: npt.NDArray[np.uint16]
    #: it arrives before a lower-numbered instruction of its command
    out_of_sequence: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.t_ns)


def future_dated_responses(
    rng: np.random.Generator,
    execution_ns: npt.NDArray[np.int64],
    ready_ns: npt.NDArray[np.int64],
    instructions: tuple[int, int],
    out_of_order_share: float,
    not_done_share: float,
) -> FutureDatedResponses:
    """What each of ``n`` future-dated commands reports when it runs (DUIS: a Response with the
    command's SRV carrying a ``FutureDatedDeviceAlertMessage`` per instruction).

    Per command ``j``: ``m`` instructions, ``m`` uniform in ``instructions`` (inclusive). It
    runs at ``max(execution_ns[j], ready_ns[j])`` (``ready_ns``: when the device had it, the
    acknowledgement's time); instruction ``i`` reports ``d_1 + ... + d_i`` seconds later, each
    ``d`` uniform in 1-4 s. A share ``out_of_order_share`` of commands report in reverse (the
    last instruction first, with the delays of the first). Each response is 0x8F66 (done), or
    0x8F67 (not done) with probability ``not_done_share``.

    A response is **out of sequence** when it arrives before a lower-numbered instruction of
    its command (found over all the command's responses, including any that arrive after a
    run's end). Draws, in order: the counts, the delays, the reversals, the codes; all for
    every command given, so a command's draws do not depend on which others are kept.
    """
    n = len(execution_ns)
    m = rng.integers(instructions[0], instructions[1] + 1, n).astype(np.int64)
    total = int(m.sum())
    cmd = np.repeat(np.arange(n), m)
    first = np.repeat(np.cumsum(m) - m, m)
    instr = np.arange(total) - first + 1
    step = rng.integers(1, 5, total).astype(np.int64) * _NS
    run = np.cumsum(step)
    starts = np.cumsum(m) - m  # each command's first row (m >= 1)
    delay = run - np.repeat((run - step)[starts], m)  # within each command: d_1 + ... + d_i
    reverse = np.repeat(rng.random(n) < out_of_order_share, m)
    code = np.where(rng.random(total) < not_done_share, ALERT_FD_NOT_DONE, ALERT_FD_DONE).astype(np.uint16)
    last = first + np.repeat(m, m) - 1
    # reversed: instruction i takes the delay of instruction m + 1 - i
    delay = delay[np.where(reverse, first + last - np.arange(total), np.arange(total))]
    start = np.maximum(np.asarray(execution_ns, np.int64), np.asarray(ready_ns, np.int64))
    t = start[cmd] + delay
    # arrival order within each command (times are distinct within one: the delays increase)
    order = np.lexsort((t, cmd))
    rank = np.empty(total, np.int64)
    rank[order] = np.arange(total) - first
    # out of sequence: a later arrival of the same command has a lower instruction number. The
    # suffix minimum of (command, instruction) keys in arrival order, groups in command order:
    # a later group's keys are all larger, so the running minimum never crosses into a group
    key = cmd * 65536 + instr
    arrived = key[order]
    suffix_min = np.minimum.accumulate(arrived[::-1])[::-1]
    out_of_sequence = np.empty(total, np.bool_)
    out_of_sequence[order] = suffix_min < arrived
    return FutureDatedResponses(
        command=cmd,
        t_ns=t,
        alert_code=code,
        instruction=instr.astype(np.uint16),
        total_instructions=m[cmd].astype(np.uint16),
        received=(rank + 1).astype(np.uint16),
        out_of_sequence=out_of_sequence,
    )
