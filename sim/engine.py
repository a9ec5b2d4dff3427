"""What the model runs on besides SimPy itself: variates drawn in blocks, light processes,
light timers, handoffs, and the garbage collector paused for a run.

Each exists because the plain form costs more per application and buys nothing here (see
``benchmarks/bench_run.py``): a numpy call per variate, SimPy's ``Process`` (an event to
start and one to end, which nobody waits for), a dictionary per timeout, a SimPy event for a
handoff that happens at once, and a collector that walks every live application to find no
cycle.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from heapq import heappush

import numpy as np
from simpy.events import NORMAL


def _stream(draw_block, size: int):
    """An endless stream of variates, drawn ``size`` at a time: numpy is fast per block, slow
    per call. A block is drawn when the one before is used up, as it would be one by one."""
    while True:
        yield from draw_block(size).tolist()


class Draws:
    """Variates from one generator: ``exponential()``, ``uniform()`` and ``normal()`` give the
    next standard variate of each kind (each kind is drawn in its own blocks)."""

    def __init__(self, rng: np.random.Generator, block: int = 2048):
        self.rng = rng
        self.exponential = _stream(rng.standard_exponential, block).__next__
        self.uniform = _stream(rng.random, block).__next__
        self.normal = _stream(rng.standard_normal, block).__next__


class Steps:
    """A generator of SimPy events run as a light process: started at once, resumed from the
    callbacks of each event it yields.

    SimPy's ``Process`` costs two events more (one to start, one to end) and a larger heap;
    for an application's path nobody waits for either, and they were a third of its events.
    Long-lived processes (arrivals, the timeline) stay SimPy processes.
    """

    __slots__ = ("_send",)

    def __init__(self, generator):
        self._send = generator.send
        self(_START)

    def __call__(self, event) -> None:
        """The awaited event happened: resume the generator with its value."""
        try:
            event = self._send(event._value)  # as SimPy's Process reads it
            while event.callbacks is None:  # already processed: go on at once, as SimPy does
                event = self._send(event._value)
        except StopIteration:
            return
        event.callbacks.append(self)


class _Start:
    """Stands for the event a path starts on: its value is the generator's first send."""

    _value = None


_START = _Start()


class Handoff:
    """What a queued application waits on: fired by the official who takes it (with the
    official's kind) or by its withdrawal (None), and resumed there and then.

    A SimPy event would go through the event queue first, to be processed at the same
    instant; nothing else can happen to the application in between, so the handoff skips the
    trip (a third of the model's events when officials are busy).
    """

    __slots__ = ("callbacks", "_value", "triggered")

    def __init__(self):
        self.callbacks = []
        self.triggered = False

    def fire(self, value) -> None:
        self.triggered, self._value = True, value
        callbacks, self.callbacks = self.callbacks, None
        for callback in callbacks:
            callback(self)


class Timer:
    """SimPy's ``env.timeout(delay)`` with only what an event in the queue needs.

    SimPy's ``Timeout`` carries an instance dictionary, its environment, delay and value; a
    Timer has one slot. It goes into the environment's queue exactly as a Timeout schedules
    itself (its time, normal priority, the next event id), so the order of events, and every
    result, are the same (``tests/test_process.py``). It reads SimPy 4's ``Environment``
    internals (``_queue``, ``_now``, ``_eid``), as ``Steps`` reads ``_value``.
    """

    __slots__ = ("callbacks",)
    _value = None
    _ok = True

    def __init__(self, env, delay: float):
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        self.callbacks = []
        heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), self))


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while the model runs, then as it was.

    A run frees what it is done with by reference counting: an application's path holds no
    reference cycle (tests/test_process.py checks that a run leaves none behind but what
    the finished model itself holds). The collector would find nothing, yet walk every
    live application again and again: with 50,000 waiting it cost 40 % of the run.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
