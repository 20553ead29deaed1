"""KerasTuner's distributed mode, with bounded waits on both sides.

KerasTuner 1.4.8 runs a distributed search as one chief, which serves the oracle over
gRPC, and workers, which ask it for trials. Left as it is, a lost process stalls the
others: each request of a worker waits for the chief (gRPC's `wait_for_ready`) up to an
hour, then fails with a bare `grpc.RpcError`; and the chief, once the search is over,
waits for every trial still out and every worker not yet told, checking every 20
seconds, with no end. This module keeps KerasTuner's protocol and its servicer, and
bounds both waits:

- A worker (`bound_worker`) waits at most `chief_timeout` seconds for the chief to
  answer a request, then stops with one `ChiefUnreachableError`. A chief started again
  within that time is found again (gRPC retries the connection every few seconds), and
  the worker goes on with it.
- The chief (`serve`) checks every second whether its workers are done. Under a
  deadline it ends `worker_grace` seconds after it at the latest, and says which trials
  no worker reported (a worker that was killed). Without one it waits for them, and
  says once, after `worker_grace` seconds, which they are and how to free it.
- A restarted chief puts the trials that were running when it died back in line (as
  KerasTuner does), but never one that had ended; when the worker that was training
  one reports it after all, the chief takes the report and takes the trial out of the
  line, and a trial reported twice ends once. A trial handed out again carries the
  deadline the chief has now.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time

from keras_tuner import errors
from keras_tuner.engine import trial as trial_module

from kerasnas import trials

logger = logging.getLogger("kerasnas")
_Status = trial_module.TrialStatus

CHIEF_TIMEOUT = 300.0
"""Seconds a worker waits for an unreachable chief before it stops."""
WORKER_GRACE = 30.0
"""Seconds the chief waits past its deadline for trials still out before it ends."""
RECONNECT_SECONDS = 5.0
"""Most seconds between a worker's tries to reach a chief that is down."""
POLL_SECONDS = 1.0
"""How often the chief checks whether its workers are done."""


class ChiefUnreachableError(errors.FatalError):
    """A distributed worker could not reach the chief for `chief_timeout` seconds.

    A `keras_tuner.errors.FatalError`, so the worker's `search` stops at once instead
    of failing trial after trial. The message names the chief's address and what to do.
    """


def is_chief():
    """Whether this process is the chief of a distributed search (`KERASTUNER_*` set)."""
    from keras_tuner.src.distribute import utils

    return utils.is_chief_oracle()


def is_worker():
    """Whether this process is a worker of a distributed search (`KERASTUNER_*` set)."""
    from keras_tuner.src.distribute import utils

    return utils.has_chief_oracle() and not utils.is_chief_oracle()


def chief_address():
    """The chief's `ip:port`, from `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`."""
    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"


# ---------------------------------------------------------------------- worker


def bound_worker(client, chief_timeout=CHIEF_TIMEOUT):
    """Makes every request of a worker's oracle client wait at most `chief_timeout`.

    Args:
        client: KerasTuner's `OracleClient`, the worker's stand-in for the oracle.
        chief_timeout: the most seconds one request waits for the chief to answer.
            Defaults to `CHIEF_TIMEOUT`.

    Returns:
        `client`, whose requests now raise `ChiefUnreachableError` once the chief has
        not answered for `chief_timeout` seconds.
    """
    import grpc
    from keras_tuner.src import protos

    address = chief_address()
    # gRPC's default backoff grows to two minutes between tries: a chief started again
    # would stay unseen for that long.
    options = [("grpc.max_reconnect_backoff_ms", int(RECONNECT_SECONDS * 1000))]
    channel = grpc.insecure_channel(address, options=options)
    client.stub = _BoundedStub(
        protos.get_service_grpc().OracleStub(channel), address, chief_timeout
    )
    return client


class _BoundedStub:
    """The oracle's gRPC stub, each call waiting for the chief at most `timeout` seconds."""

    def __init__(self, stub, address, timeout):
        self._stub = stub
        self._address = address
        self._timeout = timeout

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        def call(request, **kwargs):
            return self._call(name, method, request, kwargs)

        return call

    def _call(self, name, method, request, kwargs):
        import grpc

        start = time.monotonic()
        while True:
            left = self._timeout - (time.monotonic() - start)
            if left <= 0:
                raise self._unreachable(name)
            kwargs.update(wait_for_ready=True, timeout=left)
            try:
                return method(request, **kwargs)
            except grpc.RpcError as e:
                code = e.code() if callable(getattr(e, "code", None)) else None
                if code == grpc.StatusCode.UNAVAILABLE:
                    # The chief went away during the call: wait for it as for any other.
                    time.sleep(min(1.0, max(0.0, left)))
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise self._unreachable(name) from None
                raise

    def _unreachable(self, name):
        return ChiefUnreachableError(
            f"The chief at {self._address} gave no answer to {name} for {self._timeout:.0f} s, "
            "so this worker stops (its finished trials are saved in the shared directory). "
            "Start the chief again, which resumes the search, then this worker; or give "
            "`MorphismTuner(chief_timeout=...)` more seconds if the chief is only slow."
        )


# ---------------------------------------------------------------------- chief


def serve(oracle, worker_grace=WORKER_GRACE, poll=POLL_SECONDS):
    """Serves `oracle` to the workers until the search is over, as KerasTuner's chief.

    Returns once the oracle has told every worker the search is over and every trial
    has been reported; under a deadline (`oracle.deadline`, on `oracle.clock`), at
    `worker_grace` seconds past it at the latest, with a warning naming the trials and
    workers it did not hear from. Without a deadline it waits for them, and says once,
    after `worker_grace` seconds, which they are and how to free it.

    Args:
        oracle: the search's `keras_tuner.Oracle`.
        worker_grace: seconds past the deadline the chief waits for trials still
            out. Defaults to `WORKER_GRACE`.
        poll: seconds between checks. Defaults to `POLL_SECONDS`.

    Raises:
        OSError: if the chief cannot listen on its address (the message names it).
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos

    address = chief_address()
    oracle.forget_ended()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = _servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # gRPC raises on some versions, returns 0 on others
        port = 0
    if not port:
        raise OSError(
            f"The chief cannot listen on {address} (KERASTUNER_ORACLE_IP and "
            "KERASTUNER_ORACLE_PORT): the port may be in use or the address not this "
            "machine's. Choose another port, and give the workers the same one."
        )
    server.start()
    clock = getattr(oracle, "clock", time.time)
    waiting_since, said = None, False
    try:
        while True:
            time.sleep(poll)
            out, untold = _outstanding(oracle)
            if servicer.stop_triggered and not out and not untold:
                return
            deadline = getattr(oracle, "deadline", None)
            now = clock()
            if deadline is not None and now > deadline + worker_grace:
                if out or untold:
                    logger.warning("%s", _given_up(out, untold, now - deadline))
                return
            if deadline is None and servicer.stop_triggered:
                waiting_since = now if waiting_since is None else waiting_since
                if not said and now - waiting_since >= worker_grace:
                    logger.warning("%s", _waiting(out, untold))
                    said = True
    finally:
        server.stop(grace=1.0)


def _outstanding(oracle):
    """`({tuner_id: trial_id}, [tuner_id])`: the trials still out, and the workers that
    hold none and were not yet told the search is over."""
    # Copies, without the oracle's lock: KerasTuner's `synchronized` does not release it
    # when the method raises (e.g. too many failed trials in a row), and the chief
    # would then wait here for ever.
    ongoing, tuner_ids = dict(oracle.ongoing_trials), set(oracle.tuner_ids)
    out = {tuner: trial.trial_id for tuner, trial in ongoing.items()}
    return out, sorted(tuner_ids - set(out))


def _given_up(out, untold, late):
    parts = [f"The deadline passed {late:.0f} s ago"]
    if out:
        held = ", ".join(f"trial {t} ({tuner})" for tuner, t in sorted(out.items()))
        parts.append(
            f"no worker has reported {held}; the chief ends without it, and a rerun of "
            "the chief in the same directory hands it to the next worker that asks"
        )
    if untold:
        parts.append(f"{', '.join(untold)} did not ask again and may be gone")
    return "; ".join(parts) + "."


def _waiting(out, untold):
    parts = []
    if out:
        held = ", ".join(f"trial {t} ({tuner})" for tuner, t in sorted(out.items()))
        parts.append(
            f"The search is over but for {held}: the chief waits for it. If its worker "
            "is gone, start a worker with the same KERASTUNER_TUNER_ID, which trains it "
            "again, or stop the chief and run it again, which hands it to the next "
            "worker that asks"
        )
    if untold:
        parts.append(
            f"The chief waits for {', '.join(untold)} to ask for a trial: if it is gone, "
            "start it again, or stop the chief (every finished trial is saved)"
        )
    return "; ".join(parts) + "."


def _servicer(oracle):
    """KerasTuner's `OracleServicer` for `oracle`, safe for reports that outlive a chief."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    service = protos.get_service()

    class Servicer(oracle_chief.OracleServicer):
        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            trial = trial_module.Trial.from_proto(response.trial)
            if trial.status != _Status.RUNNING:
                return response
            current = with_deadline(trial, getattr(self.oracle, "deadline", None))
            return service.CreateTrialResponse(trial=current.to_proto())

        def UpdateTrial(self, request, context):
            if self.oracle.has_ended(request.trial_id):
                trial = self.oracle.get_trial(request.trial_id)
                return service.UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):
            if not self.oracle.take_report(request.trial.trial_id):
                return service.EndTrialResponse()
            response = super().EndTrial(request, context)
            # KerasTuner's `end_trial` saves the oracle before it lets the trial go; a
            # worker does not save the chief's oracle after it (a lone tuner does), so
            # the file would list the trial as running, and a rerun would train it again.
            self.oracle.save()
            return response

    return Servicer(oracle)


def with_deadline(trial, deadline):
    """`trial`, or a copy whose plan carries `deadline` if it carries another.

    A trial handed out again after the chief was started anew still carries the
    deadline of its first run; the worker must follow the chief's deadline of now.

    Args:
        trial: a KerasTuner `Trial`.
        deadline: the chief's deadline (seconds since the epoch), or None.

    Returns:
        A `Trial`.
    """
    plan = trials.plan_of(trial)
    if plan is None or deadline is None or plan.deadline == deadline:
        return trial
    plan.deadline = deadline
    trial = copy.deepcopy(trial)
    trial.hyperparameters.values[trials.PLAN] = json.dumps(plan.get_config())
    return trial
