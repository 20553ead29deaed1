"""`DurableOracle`: KerasTuner's `Oracle` with run files that survive crashes.

KerasTuner writes `oracle.json` and each `trial_*/trial.json` in place and reads them
back trusting them. A search killed mid-write (or resumed from a damaged copy) then
cannot go on. This base class writes every file atomically (`kerasnas.files`) and reads
them back robustly: a damaged trial file counts as a failed trial, a damaged oracle file
is rebuilt from the trial files. It knows nothing of the search itself.
"""

from __future__ import annotations

import datetime
import logging
import os

import keras_tuner
from keras_tuner.engine import trial as trial_module

from kerasnas import files, trials

logger = logging.getLogger("kerasnas")
_Status = trial_module.TrialStatus


class DurableOracle(keras_tuner.Oracle):
    """A `keras_tuner.Oracle` whose files are written whole and read robustly.

    Subclasses add their own state in `get_state`/`set_state`, as with KerasTuner.
    """

    def set_state(self, state):
        # Trials whose files are gone cannot be running or waiting for a retry.
        state = dict(state)
        state["ongoing_trials"] = {
            tuner: trial_id
            for tuner, trial_id in state["ongoing_trials"].items()
            if trial_id in self.trials
        }
        state["retry_queue"] = [i for i in state["retry_queue"] if i in self.trials]
        super().set_state(state)

    def save(self):
        files.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), trials.TRIAL_FILE)
        files.write_json(path, trial.get_state())

    def reload(self):
        """Reloads the search from its files (KerasTuner's `Oracle.reload`), robustly.

        An empty or truncated `trial.json` (a crash while it was written by an older
        version) is read as a failed trial without an architecture, with a warning: its
        id stays taken and the search goes on. An unreadable `oracle.json` is rebuilt
        from the trial files, with a warning: unfinished trials are run again.

        Raises:
            kerasnas.files.RunFileError: if `oracle.json` lacks a key this version needs.
        """
        for trial in trials.read_trials(self._project_dir):
            self.trials[trial.trial_id] = trial
        path = self._get_oracle_fname()
        try:
            state = files.read_json(path)
        except files.RunFileError as e:
            logger.warning("%s The search state is rebuilt from the trial files.", e)
            state = self._state_from_trials()
        try:
            self.set_state(state)
        except KeyError as e:
            raise files.RunFileError(
                f"{path} lacks {e} and was not written by this version of kerasnas. "
                "Pass overwrite=True, or another directory, to start afresh."
            ) from e
        for trial in self.ongoing_trials.values():
            self._retry_queue.append(trial.trial_id)  # as KerasTuner: run them again
        self.ongoing_trials = {}

    @keras_tuner.synchronized
    def forget_ended(self):
        """Takes the trials that have ended out of the retry line (a chief started anew).

        A reloaded oracle puts back in line every trial its file lists as running; the
        file of a chief that KerasTuner served (or of an older kerasnas) may list the last
        trial that ended as running still. It is not trained again.
        """
        ended = set(self.end_order)
        queue = self._retry_queue
        if any(i in ended for i in queue):
            queue[:] = [i for i in queue if i not in ended]
            self.save()

    @keras_tuner.synchronized
    def has_ended(self, trial_id):
        """Whether trial `trial_id` has ended (completed, failed or stopped)."""
        return trial_id in self.end_order

    @keras_tuner.synchronized
    def take_report(self, trial_id):
        """Whether the chief takes a worker's report that trial `trial_id` has ended.

        A trial that has ended already is not ended again (its report came twice: a worker
        reported it to a chief that was started anew after taking it). A trial waiting to
        be run again (a chief started anew put it back in line) leaves the line: its
        worker finished it after all.

        Args:
            trial_id: the reported trial's id.

        Returns:
            True to end the trial as reported, False to ignore the report.
        """
        if trial_id in self.end_order:
            return False
        queue = self._retry_queue
        running = {t.trial_id for t in self.ongoing_trials.values()}
        if trial_id in queue and trial_id not in running:
            queue[:] = [i for i in queue if i != trial_id]
        # KerasTuner's display notes when the search and a trial began after the oracle's
        # file is saved: a chief started anew may not know them for a trial it did not
        # hand out, and its `end_trial` would fail on it after recording the trial.
        display = getattr(self, "_display", None)
        if display is not None:
            now = datetime.datetime.now()
            display.search_start = display.search_start or now
            display.trial_start.setdefault(trial_id, now)
            display.trial_number.setdefault(trial_id, len(self.trials))
        return True

    def _state_from_trials(self):
        ids = sorted(self.trials)
        ended = [i for i in ids if self.trials[i].status != _Status.RUNNING]
        return {
            **super().get_state(),
            "ongoing_trials": {},
            "start_order": ids,
            "end_order": ended,
            "run_times": {i: 1 for i in ended},
            "retry_queue": [i for i in ids if i not in ended],
            "tried_so_far": [],
            "id_to_hash": {},
        }
