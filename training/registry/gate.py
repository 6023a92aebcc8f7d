"""The champion gate: which registered version the service serves.

Every new version gets the alias "challenger" and becomes "champion" only when it passes
(lower scores are better for every gate metric; README "Champion gate" is the user's view):

- the baselines: it beats the best of naive and seasonal naive on the same validation windows
  by the margin, the first version of a name included, so a name is never served something
  worse than the trivial forecast (`allow_worse_than_baseline` lets it past; baseline families
  skip the check: they are the floor it measures against);
- the champion: it beats the champion by the margin, both scored on the same validation
  windows *now* (the champion is downloaded and re-evaluated, so a change in the data is
  reflected). Like is compared with like: the champion can only be re-scored as the model it
  is, so against it the challenger's kept model is scored the same way (`kept_score`), while
  against the baselines, which choose nothing on validation, the challenger's cross-fitted
  score counts (training.jobs.preparation.cross_fitted);
- the request contract (training.registry.contract): a new champion must keep it, or clients
  built for the old one would be refused (`allow_contract_change` lets it past; `forecast
  promote --force` makes it champion by hand once the clients send the new contract).

The decision and the scores are written as tags on the version and on the run.
`promote_by_hand` overrides the gate and records who did it and why.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.config import BASELINE_FAMILIES
from training.errors import USER_ERRORS, ExperimentError
from training.registry.contract import (
    ContractChangeError,
    RequestContract,
    contract_of_directory,
    contract_of_version,
)
from training.registry.tracking import Tracker

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
BASELINE_LABELS = {"naive": "naive", "seasonal_naive": "seasonal naive"}

ChampionScorer = Callable[[Path], float]
"""Scores a downloaded forecaster directory on the challenger's validation windows."""


@dataclass(frozen=True)
class GateDecision:
    """The outcome of one gate (scores: lower is better)."""

    promoted: bool  # whether the challenger became champion
    name: str  # registered model name
    challenger_version: int  # the version that was gated
    champion_version: int | None  # the champion after the decision
    previous_champion: int | None  # the champion before it (None when there was none)
    metric: str  # validation metric compared
    margin: float  # relative improvement required
    # the challenger's validation score (cross-fitted where its fit chose on the validation
    # windows), compared with the baselines
    challenger_score: float
    champion_score: float | None  # the previous champion's on the same windows (None: none)
    reason: str  # one sentence saying why
    # the best baseline on the validation windows ("naive", "seasonal_naive"; None: none scored)
    baseline: str | None = None
    baseline_score: float | None = None  # its validation score
    worse_than_baseline: bool = False  # whether the challenger failed to beat it by the margin
    baseline_overridden: bool = False  # `allow_worse_than_baseline` let it past that check
    # how the challenger's request contract differs from the champion's, one line each
    # (checked only for a challenger that would be promoted)
    contract_changes: tuple[str, ...] = ()
    contract_overridden: bool = False  # `allow_contract_change` let it past that check
    # the challenger's kept model scored as the champion is, compared with the champion (None:
    # the same as challenger_score)
    kept_score: float | None = None

    @property
    def decision(self) -> str:
        """The gate decision: promoted, rejected, rejected: worse than seasonal naive, or
        rejected: request contract changed."""
        if self.promoted:
            return "promoted"
        if self.contract_changes and not self.contract_overridden:
            return "rejected: request contract changed"
        if self.worse_than_baseline and not self.baseline_overridden and self.baseline:
            return f"rejected: worse than {BASELINE_LABELS.get(self.baseline, self.baseline)}"
        return "rejected"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {**asdict(self), "decision": self.decision}

    def tags(self) -> dict[str, str]:
        """Tags written on the version and the run."""
        return {
            "gate_decision": self.decision,
            "baseline_name": self.baseline or "",
            "baseline_score": "" if self.baseline_score is None else f"{self.baseline_score:.6g}",
            "gate_metric": f"val_{self.metric}",
            "gate_margin": f"{self.margin:g}",
            "val_score": f"{self.challenger_score:.6g}",
            "val_score_kept": "" if self.kept_score is None else f"{self.kept_score:.6g}",
            "champion_score": "" if self.champion_score is None else f"{self.champion_score:.6g}",
            "champion_version_at_gate": str(self.previous_champion or ""),  # versions start at 1
            "gate_reason": self.reason,
            "contract_changes": "; ".join(self.contract_changes),
        }


def decide(challenger: float, champion: float | None, margin: float) -> tuple[bool, str]:
    """(promote, reason): promote when there is no usable champion score or challenger <=
    champion * (1 - margin); scores on the same windows, lower is better; margin in [0, 1)."""
    if not math.isfinite(challenger):
        return False, f"challenger score {challenger} is not finite"
    if champion is None:
        return True, "no champion yet"
    if not math.isfinite(champion):
        return True, f"champion score {champion} is not finite"
    threshold = champion * (1.0 - margin)
    promote = challenger <= threshold
    return promote, (
        f"challenger {challenger:.6g} {'<=' if promote else '>'} champion {champion:.6g} "
        f"x (1 - {margin:g}) = {threshold:.6g}"
    )


def best_baseline(scores: Mapping[str, float]) -> tuple[str, float] | None:
    """The lowest finite score among the naive baselines, as (name, score); None if none."""
    usable = [(v, k) for k, v in scores.items() if k in BASELINE_LABELS and math.isfinite(v)]
    if not usable:
        return None
    score, name = min(usable)
    return name, score


def beats_baseline(challenger: float, baseline: float, margin: float) -> bool:
    """challenger <= baseline x (1 - margin) (lower is better)."""
    return math.isfinite(challenger) and challenger <= baseline * (1.0 - margin)


def run_gate(
    tracker: Tracker,
    name: str,
    version: int,
    challenger_score: float,
    *,
    metric: str,
    margin: float,
    score_champion: ChampionScorer,
    run_id: str | None = None,
    baseline_scores: Mapping[str, float] | None = None,
    allow_worse_than_baseline: bool = False,
    family: str = "",
    allow_contract_change: bool = False,
    kept_score: float | None = None,
) -> GateDecision:
    """Alias `version` challenger, score the champion now, promote or not, tag both places.

    When the champion cannot be re-evaluated on these windows (e.g. the new data is too short
    for its look-back) its recorded `val_score` tag is used instead and the reason says so.

    Args:
        metric: name of the validation score (e.g. "mae").
        margin: relative improvement required.
        score_champion: scores a forecaster directory on the same validation windows.
        run_id: the training run, tagged with the decision too.
        baseline_scores: naive / seasonal_naive scores on the same validation windows (same
            metric); the challenger must beat the best of them by `margin`.
        allow_worse_than_baseline: promote on the champion comparison alone, recording that
            the baseline was not beaten.
        family: the challenger's family; baseline families skip the baseline check.
        allow_contract_change: promote even when the request contract differs from the
            champion's, recording the changes.
        kept_score: the challenger's kept model on the same windows, scored as the champion
            is; compared with the champion (None: `challenger_score` is).
    """
    previous = tracker.aliases(name).get(CHAMPION)
    tracker.set_alias(name, CHALLENGER, version)
    champion_score: float | None = None
    champion_contract: RequestContract | None = None
    note = ""
    if previous is not None and previous != version:
        champion_score, note, champion_contract = _score_champion(
            tracker, name, previous, score_champion
        )
    versus_champion = challenger_score if kept_score is None else kept_score
    promoted, reason = decide(versus_champion, champion_score, margin)
    if note:
        reason = f"{reason} ({note})"
    floor = None if family in BASELINE_FAMILIES else best_baseline(baseline_scores or {})
    worse = floor is not None and not beats_baseline(challenger_score, floor[1], margin)
    if floor is not None and worse:
        label = BASELINE_LABELS[floor[0]]
        line = (
            f"worse than {label}: challenger {challenger_score:.6g} > {label} {floor[1]:.6g} "
            f"x (1 - {margin:g}) = {floor[1] * (1.0 - margin):.6g} on the validation windows"
        )
        if allow_worse_than_baseline:
            reason = f"{reason}; {line} (allowed by --allow-worse-than-baseline)"
        else:
            promoted, reason = False, line
    changes: list[str] = []
    if promoted and champion_contract is not None:
        try:
            changes = champion_contract.changes_to(contract_of_version(tracker, name, version))
        except USER_ERRORS as exc:  # its files unreadable: the service will refuse it anyway
            logger.warning("%s v%d: request contract not compared: %s", name, version, exc)
    if changes:
        line = (
            f"request contract changed from champion v{previous}: {'; '.join(changes)}; its "
            "clients' requests would be refused"
        )
        if allow_contract_change:
            reason = f"{reason}; {line} (allowed by --allow-contract-change)"
        else:
            promoted = False
            reason = (
                f"{line}. Fix: once the clients send the new contract, run `forecast promote "
                f"{name} {version} --force --reason ...`"
            )
    if promoted:
        tracker.set_alias(name, CHAMPION, version)
    decision = GateDecision(
        promoted=promoted,
        name=name,
        challenger_version=version,
        champion_version=version if promoted else previous,
        previous_champion=previous,
        metric=metric,
        margin=margin,
        challenger_score=challenger_score,
        champion_score=champion_score,
        reason=reason,
        baseline=None if floor is None else floor[0],
        baseline_score=None if floor is None else floor[1],
        worse_than_baseline=worse,
        baseline_overridden=worse and allow_worse_than_baseline,
        contract_changes=tuple(changes),
        contract_overridden=bool(changes) and allow_contract_change,
        kept_score=kept_score,
    )
    tags = decision.tags()
    tracker.set_version_tags(name, version, tags)
    if run_id:
        tracker.set_run_tags(run_id, tags)
    logger.info("gate %s v%d: %s (%s)", name, version, tags["gate_decision"], reason)
    return decision


def _score_champion(
    tracker: Tracker, name: str, version: int, score: ChampionScorer
) -> tuple[float | None, str, RequestContract | None]:
    """(score on the windows, a note on how, the champion's request contract or None when its
    files cannot be read), from one download."""
    contract: RequestContract | None = None
    with tempfile.TemporaryDirectory(prefix="forecast-champion-") as tmp:
        try:
            directory = tracker.download_forecaster(name, version, Path(tmp))
            contract = contract_of_directory(directory)
            return float(score(directory)), f"champion v{version} re-evaluated", contract
        except USER_ERRORS as exc:
            tags = tracker.version(name, version).tags
            recorded = tags.get("val_score_kept") or tags.get("val_score", "")
            logger.warning("champion v%d could not be re-evaluated: %s", version, exc)
            try:
                value: float | None = float(recorded)
            except ValueError:
                value = None
            note = f"champion v{version} not re-evaluated ({exc}); recorded score used"
            return value, note, contract


@dataclass(frozen=True)
class ManualPromotion:
    """A champion set by hand."""

    name: str
    version: int
    previous_champion: int | None
    user: str
    reason: str
    contract_changes: tuple[str, ...] = ()


def promote_by_hand(
    tracker: Tracker, name: str, version: int, *, reason: str, user: str, force: bool = False
) -> ManualPromotion:
    """Make `version` the champion regardless of scores; record who and why.

    A version whose request contract differs from the champion's is refused unless `force`
    (then the changes are recorded in the `contract_changes` tag).

    Raises:
        ExperimentError: for an empty reason.
        ContractChangeError: the contract differs and `force` is not set; nothing changed.
        TrackingError: for an unknown model or version.
    """
    if not reason.strip():
        raise ExperimentError(
            "--reason is empty. Fix: say why, e.g. --reason 'rollback after incident 42'"
        )
    info = tracker.version(name, version)
    previous = tracker.aliases(name).get(CHAMPION)
    changes = _contract_changes(tracker, name, previous, version)
    if changes and not force:
        raise ContractChangeError(
            f"{name} v{version} changes the request contract of champion v{previous}: "
            f"{'; '.join(changes)}; clients sending the old contract would be refused. Fix: "
            "pass --force once they send the new one"
        )
    tracker.set_alias(name, CHAMPION, version)
    tags = {
        "gate_decision": "manual",
        "promoted_by": user,
        "promoted_reason": reason,
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "champion_version_at_gate": str(previous or ""),
        "contract_changes": "; ".join(changes),
    }
    tracker.set_version_tags(name, version, tags)
    if info.run_id:
        tracker.set_run_tags(info.run_id, {f"manual_promotion_v{version}": f"{user}: {reason}"})
    return ManualPromotion(
        name=name, version=version, previous_champion=previous, user=user, reason=reason,
        contract_changes=tuple(changes),
    )  # fmt: skip


def _contract_changes(tracker: Tracker, name: str, previous: int | None, version: int) -> list[str]:
    """How `version`'s request contract differs from champion `previous`'s; empty when there
    is no other champion, or when either version's files cannot be read (a rollback away
    from a broken champion must stay possible)."""
    if previous is None or previous == version:
        return []
    try:
        before = contract_of_version(tracker, name, previous)
        after = contract_of_version(tracker, name, version)
    except USER_ERRORS as exc:
        logger.warning(
            "%s: request contracts of v%d and v%d not compared: %s", name, previous, version, exc
        )
        return []
    return before.changes_to(after)
