"""Why the search does what it does: one sentence per decision, from the numbers behind it.

The oracle puts the sentence in the trial it proposes (`kerasnas.trials.REASON`), the
tuner prints it when the trial starts, `history` shows it, and `summary` says at the end
what the search added over its first architecture. Plain numbers in, text out.
"""

from __future__ import annotations

from kerasnas import trials
from kerasnas.oracle.measurements import score_error
from kerasnas.oracle.schedule import INITIAL_EPOCHS, REFINE_EPOCHS


def _number(x):
    """A count of epochs or seconds for a sentence: two significant digits below 10."""
    return f"{x:.2g}" if abs(x) < 10 else f"{x:.0f}"


def first_architecture(width, room, epoch, needed):
    """Why the first default architecture has its width.

    Args:
        width: its first-stage filters.
        room: seconds training could use when it was sized, or None without a deadline.
        epoch: seconds of one of its epochs, or None before any timing.
        needed: epochs of it that had to fit in `room` (`BudgetSchedule.first_width`).
    """
    head = f"the first architecture, {width} filters wide"
    if room is None:
        return f"{head}: no time limit to size it to"
    if epoch is None or needed is None:
        return f"{head}: no timing to size it by"
    if needed * epoch > room:
        return f"{head}, the narrowest: {_number(room / epoch)} of its epochs fit in {room:.0f} s"
    return (
        f"{head}: the widest of which {_number(needed)} epochs fit in {room:.0f} s "
        f"(an epoch takes {_number(epoch)} s)"
    )


def first_architecture_given(width):
    """Why the first default architecture has its width, when the user chose it.

    Args:
        width: its first-stage filters (`first_width`).
    """
    return f"the first architecture, {width} filters wide, as `first_width` asks"


def augmentation(augment, room, epoch, augment_epochs):
    """Why every trial trains on augmented images, or why not.

    Args:
        augment: the decision.
        room: seconds training could use, or None without a deadline.
        epoch: seconds of one epoch of the first architecture, or None.
        augment_epochs: the epochs of it that must fit to augment (None: never).
    """
    if augment_epochs is None:
        return "no augmentation from the start (augment_epochs=None)"
    if room is None or epoch is None:
        return "no augmentation from the start: no time limit to judge it by"
    fit = f"{room / epoch:.0f} epochs of it fit, {augment_epochs:g} needed"
    if augment:
        return f"every trial trains on augmented images: {fit}"
    return f"no augmentation from the start: {fit}"


def another_initial(index, epochs_left, given):
    """Why the `index`-th (from 0) initial architecture starts.

    Args:
        index: its position among the initial architectures.
        epochs_left: how many of its epochs fit in the time left.
        given: whether the user gave the initial architectures.
    """
    head = f"initial architecture {index + 1}" + (" of those given" if given else "")
    if index == 0 or epochs_left == float("inf"):
        return head
    return f"{head}: {epochs_left:.0f} of its epochs fit ({INITIAL_EPOCHS} needed from scratch)"


def child(parent_id, morphisms, how, seconds, epoch):
    """Why a morphism child is tried.

    Args:
        parent_id: the trial it grows from.
        morphisms: how many morphisms lead from the parent to it.
        how: `"random"` for the random ablation, else the acquisition (`"ei"`, `"ucb"`).
        seconds: its training allowance, or None without one.
        epoch: seconds of one of its epochs, or None.
    """
    chosen = {
        "random": "drawn at random from the candidates (search='random')",
        "ei": "the candidate of highest expected improvement per second",
        "ucb": "the candidate of highest upper confidence bound per second",
    }.get(how, f"chosen by {how}")
    line = f"a child of trial {parent_id} by {morphisms} morphism{'s' * (morphisms != 1)}, {chosen}"
    if seconds is not None:
        line += f"; it trains {seconds:.0f} s"
        if epoch:
            line += f", about {_number(seconds / epoch)} of its epochs"
    return line


def refinement(
    parent_id,
    remaining,
    epochs_left,
    child_epochs,
    children,
    refine_share,
    cause="last stretch",
    stalled=0,
    error=None,
):
    """Why the best trial is refined now, and no further child tried.

    Args:
        parent_id: the trial refined.
        remaining: seconds to the deadline.
        epochs_left: epochs of its architecture that fit in `remaining`.
        child_epochs: of those, how many a child's run would take, or None untimed.
        children: how many children were tried before.
        refine_share: `BudgetSchedule.refine_share`.
        cause: what `BudgetSchedule.refines` returned. Defaults to `"last stretch"`.
        stalled: the children in a row that gained less than one standard error.
            Defaults to 0.
        error: that standard error, on the score's scale. Defaults to None.
    """
    if cause == "few epochs":
        why = (
            f"{_number(epochs_left)} epochs of trial {parent_id} fit ({REFINE_EPOCHS} or fewer "
            "go to refining it)"
        )
        if child_epochs is not None:
            why += f"; a child would take {_number(child_epochs)} of them"
    elif cause == "no gain":
        why = (
            f"the last {stalled} children each beat trial {parent_id}'s score by less than "
            f"one standard error of the validation score ({error:.4f}), which noise alone "
            "could give"
        )
    else:
        why = f"the last {refine_share:.0%} of the budget has come"
    head = "no child" if not children else f"no further child after {children}"
    return f"{head}: {why}. Refining trial {parent_id} for the {remaining:.0f} s left"


def ablation(parent_id, remaining):
    """Why the first architecture trains on without search (`searcher_args` search=False)."""
    left = "without a time limit" if remaining is None else f"for the {remaining:.0f} s left"
    return f"no search (search=False): trial {parent_id} trains on {left}"


def summary(all_trials, direction, objective, validation_count=None):
    """What the search added over its first architecture, on validation.

    Args:
        all_trials: `{trial_id: Trial}` of the search.
        direction: `"max"` or `"min"`, the objective's.
        objective: the objective's name, for the sentence.
        validation_count: how many validation images scored the trials, or None. With
            an accuracy objective, a gain smaller than one standard error of a score,
            sqrt(p (1 - p) / n), is said to be one that noise alone could give.

    Returns:
        `(record, sentence)`: `record` a dict of plain values (`first_trial_id`,
        `first_score`, `best_trial_id`, `best_score`, `gain`, positive when the search
        improved on the first architecture, and `children`, the completed morphism
        children), or `(None, None)` before any trial completed.
    """
    ranked = trials.ranked(all_trials.values(), direction)
    if not ranked:
        return None, None
    with_graph = trials.in_order(t for t in all_trials.values() if trials.has_architecture(t))
    first_key = trials.key_of(with_graph[0]) if with_graph else None
    family = [t for t in ranked if trials.has_architecture(t) and trials.key_of(t) == first_key]
    best = ranked[0]
    children = sum(trials.is_child(t) for t in ranked)
    record = {
        "best_trial_id": best.trial_id,
        "best_score": best.score,
        "first_trial_id": family[0].trial_id if family else None,
        "first_score": family[0].score if family else None,
        "gain": None,
        "children": children,
    }
    if not family:
        return record, f"the best trial, {best.trial_id}, is not of the first architecture"
    sign = 1.0 if direction == "max" else -1.0
    record["gain"] = sign * (best.score - family[0].score)
    tried = f"{children} child{'ren' * (children != 1)} completed"
    if best in family:
        return record, (
            f"the search added nothing over the first architecture ({tried}): its best "
            f"trial, {best.trial_id}, is the first architecture, {objective} = {best.score:.4f}"
        )
    if record["gain"] <= 0:
        return record, (
            f"the search added nothing over the first architecture ({tried}): its best "
            f"trial, {best.trial_id}, a child, ties it at {objective} = {best.score:.4f}"
        )
    line = (
        f"the search added {record['gain']:+.4f} {objective} over the first architecture "
        f"({family[0].score:.4f} in trial {family[0].trial_id}, {best.score:.4f} in trial "
        f"{best.trial_id}; {tried})"
    )
    error = score_error(best.score, objective, validation_count)
    if error is not None:
        if record["gain"] < error:
            line += (
                f", less than one standard error of a score on {validation_count:,} "
                f"validation images ({error:.4f}): noise alone could give it"
            )
    return record, line
