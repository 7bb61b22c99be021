"""posterior="ensemble": models trained from seeds seed, seed+1, ... on the same shots, their
probabilities averaged (the maths: ensembles.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..seeding import seed_everything
from ..progress import Progress
from .ensembles import DEFAULT_MEMBERS, member_samples
from .strategy import Fitting, SampledPosterior, register_posterior

MEMBERS_FOLDER = "members"  # the extra members, one model folder each (the first is the main model)


@register_posterior
class DeepEnsemble(SampledPosterior):
    name = "ensemble"
    default_samples = DEFAULT_MEMBERS

    def __init__(self, samples: int, seed: int = 0, info: dict | None = None, members: list | None = None):
        super().__init__(samples, seed, info)
        self.members = members or []

    def fit(self, fitting: Fitting) -> list[DeepEnsemble]:
        clf = fitting.clf
        with Progress(clf.show_progress) as progress:
            task = progress.add("Training ensemble members", total=self.samples - 1)
            for i in range(1, self.samples):
                seed_everything(self.seed + i)
                member = fitting.method_cls(fitting.params, fitting.backbone, fitting.device)
                member.class_names = clf.model_.class_names
                member.fit(fitting.texts, fitting.y_idx, len(clf.classes_), seed=self.seed + i, progress=None)
                self.members.append(member)
                progress.advance(task)
        self.info = {"kind": "ensemble", "members": 1 + len(self.members),
                     "seeds": [self.seed + i for i in range(1 + len(self.members))]}
        return [self]

    def sampled_proba(self, model, texts: list[str], progress) -> np.ndarray:
        return member_samples([model, *self.members], texts, progress=progress)

    def write(self, folder: Path) -> None:
        for i, member in enumerate(self.members, start=1):
            (folder / MEMBERS_FOLDER / str(i)).mkdir(parents=True)
            member.save(folder / MEMBERS_FOLDER / str(i))

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> DeepEnsemble:
        samples = int(config["posterior"]["samples"])
        # The members are models of the main model's method, with its parameters.
        model = clf.model_
        method_cls, params = type(model), model.params
        members = [method_cls.load(folder / MEMBERS_FOLDER / str(i), params, clf.backbone_, model.device,
                                   len(clf.classes_)) for i in range(1, samples)]
        for member in members:
            member.class_names = model.class_names
        return cls(samples, clf.seed, clf.train_info_.get("posterior"), members)

    def describe(self) -> str:
        seeds = self.info.get("seeds", [self.seed + i for i in range(1 + len(self.members))])
        return f"Ensemble of {1 + len(self.members)} models (seeds {seeds})"
